"""What the SIJ network's in-plane grid costs a perfect network's fat-metaplasia DSC, no model involved.

The SIJ network works at ``spacing_mm`` in plane (1.0 in weights v0.4.0) and is trained on labels
resampled to that grid by nearest neighbour; its probabilities go back to the native pixels
bilinearly. A network that reproduced its target exactly would still lose what the target rounds
away. Two targets, each taken back to the native grid and scored against the native FM mask:

* ``nearest``: the label nearest each grid pixel's centre (how ``train sij`` trains);
* ``shares``: each class's share of the grid pixel's area (what ``train ldh --soft-labels`` does
  for the lumbar network; not implemented for the SIJ network).

Prints the FM DSC per study with FM and the mean (docs/sij.md)::

    dicom-node synth sij --out var/phantoms/sij-cls --seed 1100 --count 12
    python docs/sij_grid_ceiling.py var/phantoms/sij-cls [1.0]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pydicom
import torch
import torch.nn.functional as F

from inference.labels import SijLabel
from inference.sij.transforms import in_plane_size, resample_in_plane

#: the softmax classes (oedema is a separate channel of the network)
CLASSES = int(SijLabel.OEDEMA)


def main(root: Path, spacing_mm: float) -> None:
    scores: dict[str, list[float]] = {"nearest": [], "shares": []}
    for study in sorted(p for p in root.iterdir() if (p / "labels" / "cor_t1.npz").is_file()):
        labels = np.load(study / "labels" / "cor_t1.npz")["labels"].astype(np.int64)
        labels[labels >= CLASSES] = SijLabel.BACKGROUND
        reference = labels == SijLabel.FAT_METAPLASIA
        if not reference.any():
            continue
        header = pydicom.dcmread(sorted((study / "dicom" / "cor_t1").glob("*.dcm"))[0], stop_before_pixels=True)
        pixel = [float(v) for v in header.PixelSpacing]
        size = in_plane_size(labels.shape, [float(header.SliceThickness), *pixel], spacing_mm)
        one_hot = F.one_hot(torch.from_numpy(labels), CLASSES).permute(3, 0, 1, 2).float()
        nearest = resample_in_plane(torch.from_numpy(labels[None]).float(), size, mode="nearest").long()[0]
        k = labels.shape[0]
        grids = {
            "nearest": F.one_hot(nearest, CLASSES).permute(3, 0, 1, 2).float(),
            "shares": F.interpolate(one_hot.reshape(CLASSES * k, 1, *labels.shape[1:]), size=size, mode="bilinear",
                                    antialias=True, align_corners=False).reshape(CLASSES, k, *size),
        }
        line = []
        for name, grid in grids.items():
            back = resample_in_plane(grid, labels.shape[1:], mode="bilinear").argmax(dim=0).numpy() == SijLabel.FAT_METAPLASIA
            scores[name].append(float(2 * (back & reference).sum() / (back.sum() + reference.sum())))
            line.append(f"{name} {scores[name][-1]:.3f}")
        print(f"{study.name}: pixel {pixel[0]:.2f} mm, FM {int(reference.sum())} px; " + ", ".join(line))
    for name, values in scores.items():
        print(f"{name:8s} {spacing_mm} mm: FM DSC mean {np.mean(values):.3f} (min {np.min(values):.3f}, n={len(values)})")


if __name__ == "__main__":
    main(Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 1.0)
