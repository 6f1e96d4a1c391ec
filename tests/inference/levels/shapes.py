"""Hand-made geometry for the level tests: volumes, discs and a spine drawn on a canvas."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from inference.labels import SagittalLabel
from inference.levels import DiscLevel


@dataclass
class FakeVolume:
    """The three attributes of :class:`inference.volume.Volume` the level code reads."""

    array: np.ndarray
    affine: np.ndarray
    frame_of_reference_uid: str | None


def rotation_x(degrees: float) -> np.ndarray:
    """Rotation about the patient's left-right (x) axis."""
    a = np.radians(degrees)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


def axial_stack(
    centre: tuple[float, float, float],
    *,
    tilt_deg: float = 0.0,
    n_slices: int = 5,
    slice_mm: float = 4.0,
    size: int = 64,
    pixel_mm: float = 3.0,
    frame: str | None = "1.2.3",
) -> FakeVolume:
    """An axial stack centred at ``centre``, its plane tilted ``tilt_deg`` about x."""
    rot = rotation_x(tilt_deg)
    row_dir = rot @ np.array([1.0, 0.0, 0.0])  # along a row: patient left
    col_dir = rot @ np.array([0.0, 1.0, 0.0])  # down a column: posterior
    normal = np.cross(row_dir, col_dir)
    affine = np.eye(4)
    affine[:3, 0] = normal * slice_mm
    affine[:3, 1] = col_dir * pixel_mm
    affine[:3, 2] = row_dir * pixel_mm
    half = np.array([(n_slices - 1) / 2, (size - 1) / 2, (size - 1) / 2])
    affine[:3, 3] = np.asarray(centre) - affine[:3, :3] @ half
    return FakeVolume(np.zeros((n_slices, size, size), np.float32), affine, frame)


def disc(name: str, z: float, tilt_deg: float = 0.0, y: float = 0.0, confidence: float = 0.9) -> DiscLevel:
    """A disc at height ``z`` whose plane is tilted ``tilt_deg`` about x (normal cranial)."""
    return DiscLevel(name, np.array([0.0, y, z]), rotation_x(tilt_deg) @ np.array([0.0, 0.0, 1.0]), confidence)


def draw_spine(
    shape: tuple[int, int] = (320, 256),
    n_discs: int = 5,
    *,
    top: int = 40,
    pitch: int = 48,
    disc_height: int = 10,
    below: str = "sacrum",
    lowest_length: int | None = None,
    skip: int | None = None,
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """A canonical sagittal label map (rows cranial to caudal, columns anterior to posterior).

    Vertebral bodies alternate with discs down a column; a sacral block below the
    lowest disc (``below="sacrum"``), nothing (``"none"``, SPIDER's masks leave the
    sacrum unlabelled) or one lumbar-height body (``"lumbar"``); a canal behind them. Returns the map and the
    disc centres ``(row, col)`` cranial to caudal (a ``skip``-ped disc is not drawn
    and not listed).
    """
    labels = np.zeros(shape, np.uint8)
    left, right = 80, 150
    centres: list[tuple[float, float]] = []
    labels[:, right + 10 : right + 30] = SagittalLabel.CANAL
    row = top
    labels[max(0, row - pitch + disc_height) : row, left:right] = SagittalLabel.VERTEBRA
    for index in range(n_discs):
        lowest = index == n_discs - 1
        length = lowest_length if (lowest and lowest_length) else right - left
        l0 = left + (right - left - length) // 2
        if index != skip:
            labels[row : row + disc_height, l0 : l0 + length] = SagittalLabel.DISC
            centres.append((row + (disc_height - 1) / 2, l0 + (length - 1) / 2))
        else:
            labels[row : row + disc_height, left:right] = SagittalLabel.VERTEBRA
        body_end = row + pitch
        if lowest and below == "none":
            break
        if lowest and below == "sacrum":
            body_end = min(shape[0], row + disc_height + 70)
        labels[row + disc_height : body_end, left:right] = SagittalLabel.VERTEBRA
        row += pitch
    return labels, centres


class StubNetwork(torch.nn.Module):
    """Returns logits that make a fixed canvas label map, whatever the input."""

    def __init__(self, canvas_labels: np.ndarray) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        onehot = np.eye(len(SagittalLabel), dtype=np.float32)[canvas_labels].transpose(2, 0, 1)
        self.register_buffer("logits", torch.as_tensor(onehot * 20.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.unsqueeze(0).expand(x.shape[0], -1, -1, -1) + 0 * self.dummy
