"""Hand-made axial stacks and a stub network that reads labels back from intensities."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from inference.labels import AxialLabel as L

N_CLASSES = len(L)


def labelled_slice(depth: int = 0, cols: tuple[int, int] = (46, 52)) -> np.ndarray:
    """100 x 100 slice at 1 mm: disc, sac, facets (right at low columns), optional herniation."""
    lab = np.zeros((100, 100), np.uint8)
    lab[10:30, 30:70] = L.VERTEBRA
    lab[30:50, 30:70] = L.DISC
    lab[55:75, 40:60] = L.DURAL_SAC
    lab[65:76, 14:25] = L.FACET_RIGHT
    lab[65:76, 75:86] = L.FACET_LEFT
    if depth:
        lab[50 : 50 + depth, cols[0] : cols[1] + 1] = L.HERNIATION
    return lab


@dataclass
class FakeVolume:
    """The attributes of :class:`inference.volume.Volume` the pipeline reads."""

    array: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    sop_instance_uids: list[str]
    frame_numbers: list[int | None]
    series_instance_uid: str = "1.2.3"
    study_instance_uid: str = "1.2"
    frame_of_reference_uid: str | None = "1.2.9"
    headers: list[object] = field(default_factory=list)

    @property
    def row_direction(self) -> np.ndarray:
        v = self.affine[:3, 2]
        return np.asarray(v / np.linalg.norm(v))

    @property
    def column_direction(self) -> np.ndarray:
        v = self.affine[:3, 1]
        return np.asarray(v / np.linalg.norm(v))


def make_stack(labels: np.ndarray, z: float, *, mirrored: bool = False, name: str = "s") -> FakeVolume:
    """An axial stack whose intensities are ``10 x label`` (so a stub can read the labels back)."""
    labels = np.asarray(labels)
    if mirrored:  # columns now run towards the patient's right
        labels = labels[..., ::-1]
    affine = np.eye(4)
    affine[:3, 0] = [0, 0, -4.0]  # slices 4 mm apart, k runs caudally (row x column = -z)
    affine[:3, 1] = [0, 1.0, 0]  # down a column: posterior
    affine[:3, 2] = [-1.0 if mirrored else 1.0, 0, 0]
    affine[:3, 3] = [-50.0 if not mirrored else 50.0, -50.0, z]
    n = labels.shape[0]
    return FakeVolume(
        array=(labels.astype(np.float32) * 10.0),
        affine=affine,
        spacing=(4.0, 1.0, 1.0),
        sop_instance_uids=[f"{name}.{k}" for k in range(n)],
        frame_numbers=[None] * n,
    )


class IntensityStub(torch.nn.Module):
    """Logits peaking at the class whose value is ``6 x`` the normalised intensity.

    The hand-made stacks hold ``10 x label``, and the vertebra (value 60) is more than
    0.5 % of every slice, so the preprocessing maps label ``c`` to ``c / 6``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("classes", torch.arange(N_CLASSES, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -10.0 * (x * 6.0 - self.classes) ** 2


@pytest.fixture
def stub() -> IntensityStub:
    return IntensityStub()
