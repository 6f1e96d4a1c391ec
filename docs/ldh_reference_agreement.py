"""How far two readings of the same lumbar phantom agree on the herniation, with no model involved.

``lumbar-1`` labelled each pixel with the nearest tissue voxel at the slice's centre plane;
``lumbar-2`` (:func:`inference.phantoms.lumbar_render.sample_labels`) with the label of the largest
share of what the pixel's image value averages. Both are faithful to the same 3D anatomy; their
agreement bounds what any segmentation of the images can reach against the first (docs/ldh.md,
"The reference itself"). Prints the mean herniation IoU per level stack and on the slice of maximal
herniation, as ``dicom-node evaluate ldh`` pools them::

    python docs/ldh_reference_agreement.py 20000 20024
"""

from __future__ import annotations

import sys

import numpy as np

from inference.labels import AxialLabel
from inference.metrics import iou
from inference.phantoms.lumbar import build_lumbar_scene
from inference.phantoms.lumbar_render import _nearest_codes, sample_labels
from inference.phantoms.lumbar_tissue import axial_label_table


def main(first: int, stop: int) -> None:
    table = axial_label_table()
    stack_ious, slice_ious = [], []
    for seed in range(first, stop):
        scene = build_lumbar_scene(seed, roles=("ax_t2",))
        plan = next(p for p in scene.plans if p.role == "ax_t2")
        for stack, level in zip(plan.stacks, plan.levels):
            if not level or scene.herniations[level].size == 0:
                continue
            old, new = [], []
            for plane in stack.planes:
                codes, inside = _nearest_codes(scene.tissue, scene.grid, plane.grid_indices(scene.grid))
                old.append(np.where(inside, table[codes], 0) == AxialLabel.HERNIATION)
                new.append(sample_labels(scene.tissue, scene.grid, plane, table, stack.thickness) == AxialLabel.HERNIATION)
            a, b = np.array(old), np.array(new)
            if not a.any():
                continue
            k = int(np.argmax(a.sum(axis=(1, 2))))  # the old reference's slice of largest herniation area
            stack_ious.append(iou(a, b))
            slice_ious.append(iou(a[k], b[k]))
            print(f"seed {seed} {level}: size {scene.herniations[level].size}, stack IoU {stack_ious[-1]:.3f}", flush=True)
    s, k = np.array(stack_ious), np.array(slice_ious)
    print(f"{len(s)} herniations: stack IoU mean {s.mean():.3f} (min {s.min():.3f}), "
          f"slice-of-maximum IoU mean {k.mean():.3f}")


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
