"""Tiny in-memory SIJ cases for unit tests and smoke-training (not the phantoms).

Box-shaped anatomy on a coronal grid: right ilium, sacrum and left ilium side by side with
a joint space between them, fat-metaplasia blocks against the joint in random quadrants,
oedema blocks on the STIR. Intensities are plain T1/STIR-like constants plus noise, so a
network learns them in a few dozen steps. Seeded, no global random state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inference.labels import SijLabel

__all__ = ["ToyCase", "toy_case"]


@dataclass(frozen=True)
class ToyCase:
    """One toy study: arrays, labels and geometry (the keys the training data use)."""

    t1: np.ndarray
    stir: np.ndarray
    t1_labels: np.ndarray
    stir_labels: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    sop_instance_uids: tuple[str, ...]
    axspa: int

    def as_dict(self) -> dict[str, object]:
        """The dictionary the transforms read."""
        return {
            "t1": self.t1,
            "stir": self.stir,
            "t1_labels": self.t1_labels,
            "stir_labels": self.stir_labels,
            "spacing": self.spacing,
        }


def toy_affine(spacing: tuple[float, float, float]) -> np.ndarray:
    """Coronal grid: columns towards the patient's left (+x), rows downwards (-z), slices posterior."""
    affine = np.eye(4)
    affine[:3, 0] = [0.0, spacing[0], 0.0]
    affine[:3, 1] = [0.0, 0.0, -spacing[1]]
    affine[:3, 2] = [spacing[2], 0.0, 0.0]
    return affine


def toy_case(seed: int, shape: tuple[int, int, int] = (10, 64, 80), spacing: float = 1.5) -> ToyCase:
    """A seeded toy study of ``shape`` (slices, rows, cols) at ``spacing`` mm in-plane, 4 mm slices."""
    rng = np.random.default_rng(seed)
    k, h, w = shape
    labels = np.zeros(shape, dtype=np.uint8)
    top, bottom = int(h * 0.15), int(h * 0.85)
    gap = 2
    mid = w // 2 + int(rng.integers(-3, 4))
    half = int(w * 0.12)
    s0, s1 = mid - half, mid + half
    labels[1:-1, top:bottom, s0:s1] = SijLabel.SACRUM
    labels[1:-1, top:bottom, max(2, s0 - gap - int(w * 0.25)) : s0 - gap] = SijLabel.ILIUM_RIGHT
    labels[1:-1, top:bottom, s1 + gap : min(w - 2, s1 + gap + int(w * 0.25))] = SijLabel.ILIUM_LEFT
    stir_labels = labels.copy()
    axspa = int(rng.random() < 0.5)
    n_lesions = int(rng.integers(0, 3) + (4 if axspa else 0))
    for _ in range(n_lesions):
        sl = int(rng.integers(1, k - 2))
        depth = int(rng.integers(2, 5))
        length = int(rng.integers(4, 12))
        r0 = int(rng.integers(top, bottom - length))
        side = int(rng.integers(0, 4))
        cols = {
            0: slice(s0, s0 + depth),  # sacrum, right joint
            1: slice(s0 - gap - depth, s0 - gap),  # right ilium
            2: slice(s1 - depth, s1),  # sacrum, left joint
            3: slice(s1 + gap, s1 + gap + depth),  # left ilium
        }[side]
        n_sl = int(rng.integers(1, 3))
        labels[sl : sl + n_sl, r0 : r0 + length, cols] = SijLabel.FAT_METAPLASIA
        if rng.random() < 0.5:
            stir_labels[sl : sl + n_sl, r0 : r0 + length, cols] = SijLabel.OEDEMA
    t1_values = {0: 60.0, SijLabel.SACRUM: 260.0, SijLabel.ILIUM_LEFT: 190.0, SijLabel.ILIUM_RIGHT: 190.0}
    t1 = np.full(shape, t1_values[0], dtype=np.float32)
    stir = np.full(shape, 40.0, dtype=np.float32)
    for value in (SijLabel.SACRUM, SijLabel.ILIUM_LEFT, SijLabel.ILIUM_RIGHT):
        t1[labels == value] = t1_values[value]
        stir[stir_labels == value] = 90.0
    t1[labels == SijLabel.FAT_METAPLASIA] = 420.0
    stir[(labels == SijLabel.FAT_METAPLASIA) & (stir_labels != SijLabel.OEDEMA)] = 90.0
    stir[stir_labels == SijLabel.OEDEMA] = 300.0
    t1 += rng.normal(scale=5.0, size=shape).astype(np.float32)
    stir += rng.normal(scale=5.0, size=shape).astype(np.float32)
    spacing3 = (4.0, spacing, spacing)
    uids = tuple(f"2.25.{seed}.{i + 1}" for i in range(k))
    return ToyCase(t1, stir, labels, stir_labels, toy_affine(spacing3), spacing3, uids, axspa)
