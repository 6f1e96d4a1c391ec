"""What the network's grid costs a perfect network, with no model involved.

The lumbar network works on slices resampled to ``pixdim`` mm (0.75 in the bundled weights); its
probabilities go back to the native pixels bilinearly before the argmax. A network that reproduced
its training target exactly would still lose what the target itself rounds away. Two targets:

* ``nearest``: the label nearest each grid pixel's centre (what ``train ldh`` trained on before
  ``--soft-labels``): a perfect network outputs its one-hot;
* ``shares``: each class's share of the grid pixel's area (``--soft-labels``).

Each is taken back to the native grid as the pipeline does and compared with the native labels:
the mean herniation IoU per level stack and on its slice of maximal herniation, as ``dicom-node
evaluate ldh`` pools them (docs/ldh.md, "Soft labels")::

    python docs/ldh_grid_ceiling.py var/phantoms/lumbar-sel [0.75]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from inference.labels import AxialLabel
from inference.ldh.data import find_studies, load_study
from inference.ldh.transforms import LABEL, NATIVE_SHAPE, SPACING, ResampleToSpacingd, resample_back
from inference.metrics import iou


def round_trip(labels: np.ndarray, spacing: tuple[float, float], pixdim: float, target: str) -> np.ndarray:
    """``(slices, rows, cols)`` labels through a perfect network's target on the grid and back."""
    classes = len(AxialLabel)
    if target == "nearest":
        grid = ResampleToSpacingd([LABEL], pixdim=pixdim, modes=("nearest",))(
            {LABEL: torch.from_numpy(labels.astype(np.float32)), SPACING: spacing})
        probs = F.one_hot(grid[LABEL].long(), classes).permute(0, 3, 1, 2).float()
    else:
        one_hot = F.one_hot(torch.from_numpy(labels.astype(np.int64)), classes).permute(0, 3, 1, 2).float()
        grid = ResampleToSpacingd([LABEL], pixdim=pixdim, modes=("area",))(
            {LABEL: one_hot.reshape(-1, *labels.shape[1:]), SPACING: spacing})
        probs = grid[LABEL].reshape(labels.shape[0], classes, *grid[LABEL].shape[-2:])
    return resample_back(probs, grid[NATIVE_SHAPE]).argmax(dim=1).numpy()


def main(root: Path, pixdim: float) -> None:
    scores: dict[str, tuple[list[float], list[float]]] = {"nearest": ([], []), "shares": ([], [])}
    for folder in find_studies([root]):
        study = load_study(folder)
        for volume, labels in zip(study.axial, study.labels):
            reference = labels == AxialLabel.HERNIATION
            if not reference.any():
                continue
            k = int(np.argmax(reference.sum(axis=(1, 2))))
            for target, (stack, best) in scores.items():
                back = round_trip(labels, (float(volume.spacing[1]), float(volume.spacing[2])), pixdim, target)
                stack.append(iou(reference, back == AxialLabel.HERNIATION))
                best.append(iou(reference[k], back[k] == AxialLabel.HERNIATION))
    for target, (stack, best) in scores.items():
        s = np.array(stack)
        print(f"{target:8s} {pixdim} mm: {len(s)} herniation stacks, stack IoU mean {s.mean():.3f} (min {s.min():.3f}), "
              f"slice-of-maximum IoU mean {np.mean(best):.3f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.75)
