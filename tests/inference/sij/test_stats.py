"""DeLong AUC, ICC and calibration against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from inference.sij.stats import calibration, delong_auc, fit_logistic, icc_2_1, sensitivity_specificity


def naive_delong(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]).astype(float) + 0.5 * (pos[:, None] == neg[None, :])
    auc = psi.mean()
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    se = np.sqrt(v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size)
    return float(auc), float(se)


def test_delong_matches_the_definition() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 60)
    s = np.round(y * 0.8 + rng.normal(size=60), 1)  # rounded: ties included
    res = delong_auc(y, s)
    auc, se = naive_delong(y, s)
    assert res.auc == pytest.approx(auc)
    assert res.se == pytest.approx(se)
    u = sps.mannwhitneyu(s[y == 1], s[y == 0]).statistic
    assert res.auc == pytest.approx(u / (res.n_positive * res.n_negative))
    assert res.ci_low < res.auc < res.ci_high


def test_delong_needs_both_classes() -> None:
    with pytest.raises(ValueError):
        delong_auc(np.ones(4), np.arange(4.0))


def test_icc_absolute_agreement_penalises_offset() -> None:
    a = np.array([1.0, 2, 3, 4])
    assert icc_2_1(a, a) == pytest.approx(1.0)
    assert icc_2_1(a, a + 1) == pytest.approx((10 / 3) / (10 / 3 + 1.0))


def test_calibration_of_calibrated_and_overconfident_probabilities() -> None:
    rng = np.random.default_rng(0)
    logit = rng.normal(scale=1.5, size=4000)
    p = 1 / (1 + np.exp(-logit))
    y = rng.random(4000) < p
    good = calibration(y, p)
    assert abs(good.slope - 1) < 0.15 and abs(good.intercept) < 0.15 and good.ece < 0.05
    over = calibration(y, 1 / (1 + np.exp(-3 * logit)))
    assert over.slope < 0.5 and over.ece > good.ece


def test_logistic_fit_recovers_coefficients() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5000, 2))
    y = rng.random(5000) < 1 / (1 + np.exp(-(0.5 + 2 * x[:, 0] - x[:, 1])))
    coef, icpt = fit_logistic(x, y.astype(float), l2=0.0)
    assert coef == pytest.approx([2, -1], abs=0.2) and icpt == pytest.approx(0.5, abs=0.15)


def test_sensitivity_specificity() -> None:
    sens, spec = sensitivity_specificity(np.array([1, 1, 1, 0, 0]), np.array([1, 0, 1, 0, 1]))
    assert (sens, spec) == pytest.approx((2 / 3, 1 / 2))
