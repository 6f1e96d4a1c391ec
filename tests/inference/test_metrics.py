"""Overlap, per-class and agreement metrics on small hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from inference.metrics import (
    bootstrap_ci,
    confusion_matrix,
    dice,
    gwet_ac1,
    iou,
    macro_sensitivity_specificity,
    per_class_stats,
)


def test_dice_and_iou_by_hand() -> None:
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[0, :3] = True  # 3 pixels
    b[0, 1:] = True  # 3 pixels, 2 shared
    assert dice(a, b) == pytest.approx(4 / 6)
    assert iou(a, b) == pytest.approx(2 / 4)
    assert dice(a, a) == 1.0 and iou(a, ~a) == 0.0
    assert dice(np.zeros(3), np.zeros(3)) == 1.0
    assert iou(np.zeros(3), np.zeros(3), empty=float("nan")) != iou(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError):
        dice(a, b[:2])


def test_confusion_and_per_class() -> None:
    classes = [0, 1, 2]
    ref = [0, 0, 1, 1, 2, 2, 2]
    pred = [0, 1, 1, 1, 2, 0, 2]
    m = confusion_matrix(ref, pred, classes)
    np.testing.assert_array_equal(m, [[1, 1, 0], [0, 2, 0], [1, 0, 2]])
    stats = {s.label: s for s in per_class_stats(m, classes)}
    assert stats[0].sensitivity == pytest.approx(1 / 2)
    assert stats[0].specificity == pytest.approx(4 / 5)  # one of the 5 non-0 cases called 0
    assert stats[1].sensitivity == 1.0 and stats[1].specificity == pytest.approx(4 / 5)
    assert stats[2].sensitivity == pytest.approx(2 / 3) and stats[2].specificity == 1.0
    sens, spec = macro_sensitivity_specificity(m, classes)
    assert sens == pytest.approx((0.5 + 1 + 2 / 3) / 3)
    assert spec == pytest.approx((0.8 + 0.8 + 1.0) / 3)
    with pytest.raises(ValueError, match="not one of"):
        confusion_matrix([0], [7], classes)


def test_gwet_ac1_against_hand_computation() -> None:
    # 10 cases, two categories: a = 6 yes/yes, 2 yes/no, 1 no/yes, 1 no/no
    a = ["y"] * 8 + ["n"] * 2
    b = ["y"] * 6 + ["n"] * 2 + ["y", "n"]
    pa = 7 / 10
    pi_y = (8 / 10 + 7 / 10) / 2
    pe = 2 * pi_y * (1 - pi_y) / 1
    assert gwet_ac1(a, b) == pytest.approx((pa - pe) / (1 - pe))
    assert gwet_ac1(a, a) == pytest.approx(1.0)


def test_gwet_ac1_stable_when_one_class_dominates() -> None:
    # 95 normal discs agreed, 5 disagreements: kappa collapses, AC1 stays high
    a = [0] * 95 + [1] * 5
    b = [0] * 100
    assert gwet_ac1(a, b, classes=[0, 1]) > 0.9


def test_bootstrap_ci_brackets_the_estimate_and_is_seeded() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(10.0, 1.0, size=200)
    low, high = bootstrap_ci(lambda idx: float(values[idx].mean()), len(values), n_resamples=300, seed=3)
    assert low < values.mean() < high
    assert high - low < 0.5
    assert (low, high) == bootstrap_ci(lambda idx: float(values[idx].mean()), len(values), n_resamples=300, seed=3)
    assert np.isnan(bootstrap_ci(lambda idx: float("nan"), 5, n_resamples=10)[0])
