"""Statistics the SIJ evaluation reports: DeLong AUC, ICC, calibration, logistic fits.

Written with numpy/scipy only (no scikit-learn in the image). Segmentation overlap
(Dice, sensitivity/specificity) comes from :mod:`inference.metrics` when it is there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

__all__ = [
    "AucResult",
    "Calibration",
    "calibration",
    "delong_auc",
    "fit_logistic",
    "icc_2_1",
    "sensitivity_specificity",
    "sigmoid",
]

logger = logging.getLogger(__name__)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def fit_logistic(
    x: np.ndarray, y: np.ndarray, *, l2: float = 1.0, max_iter: int = 100, tol: float = 1e-10
) -> tuple[np.ndarray, float]:
    """L2-penalised logistic regression by Newton's method (the intercept is not penalised).

    Parameters
    ----------
    x:
        Design matrix (n, p).
    y:
        Outcomes in {0, 1}, shape (n,).
    l2:
        Ridge penalty on the coefficients (``l2 / 2 * ||w||^2``).

    Returns
    -------
    tuple
        ``(coefficients (p,), intercept)``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"x must be (n, p) and y (n,), got {x.shape} and {y.shape}")
    n, p = x.shape
    design = np.hstack([np.ones((n, 1)), x])
    beta = np.zeros(p + 1)
    penalty = np.full(p + 1, l2)
    penalty[0] = 0.0
    for _ in range(max_iter):
        prob = sigmoid(design @ beta)
        grad = design.T @ (prob - y) + penalty * beta
        weights = prob * (1.0 - prob)
        hess = design.T @ (design * weights[:, None]) + np.diag(penalty) + 1e-9 * np.eye(p + 1)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if float(np.max(np.abs(step))) < tol:
            break
    return beta[1:], float(beta[0])


@dataclass(frozen=True)
class AucResult:
    """ROC AUC with its DeLong standard error and 95 % confidence interval."""

    auc: float
    se: float
    ci_low: float
    ci_high: float
    n_positive: int
    n_negative: int


def _midrank(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    n = len(x)
    ranks = np.empty(n, dtype=np.float64)
    i = 0
    while i < n:
        j = i
        while j < n and sorted_x[j] == sorted_x[i]:
            j += 1
        ranks[i:j] = 0.5 * (i + j - 1) + 1.0
        i = j
    out = np.empty(n, dtype=np.float64)
    out[order] = ranks
    return out


def delong_auc(y_true: np.ndarray, score: np.ndarray, *, alpha: float = 0.05) -> AucResult:
    """AUC with DeLong's variance (DeLong, DeLong & Clarke-Pearson 1988; Sun & Xu 2014 midranks).

    Raises
    ------
    ValueError
        When one class is absent.
    """
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(score, dtype=np.float64)
    pos, neg = s[y], s[~y]
    m, n = pos.size, neg.size
    if m == 0 or n == 0:
        raise ValueError("AUC needs at least one positive and one negative case")
    tx, ty, tz = _midrank(pos), _midrank(neg), _midrank(np.concatenate([pos, neg]))
    auc = float((tz[:m].sum() - m * (m + 1) / 2.0) / (m * n))
    v10 = (tz[:m] - tx) / n  # structural components of the positives
    v01 = 1.0 - (tz[m:] - ty) / m
    s10 = float(np.var(v10, ddof=1)) if m > 1 else 0.0
    s01 = float(np.var(v01, ddof=1)) if n > 1 else 0.0
    se = float(np.sqrt(s10 / m + s01 / n))
    z = float(sps.norm.ppf(1.0 - alpha / 2.0))
    return AucResult(
        auc=auc,
        se=se,
        ci_low=max(0.0, auc - z * se),
        ci_high=min(1.0, auc + z * se),
        n_positive=int(m),
        n_negative=int(n),
    )


def sensitivity_specificity(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float]:
    """Sensitivity and specificity of binary predictions (NaN where a class is absent)."""
    y = np.asarray(y_true).astype(bool)
    p = np.asarray(y_pred).astype(bool)
    tp, fn = int((y & p).sum()), int((y & ~p).sum())
    tn, fp = int((~y & ~p).sum()), int((~y & p).sum())
    sens = tp / (tp + fn) if tp + fn else float("nan")
    spec = tn / (tn + fp) if tn + fp else float("nan")
    return sens, spec


def icc_2_1(a: np.ndarray, b: np.ndarray) -> float:
    """ICC(2,1): two-way random effects, absolute agreement, single measurement (Shrout & Fleiss).

    Parameters
    ----------
    a, b:
        The two raters' scores, one value per case.
    """
    data = np.stack([np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)], axis=1)
    n, k = data.shape
    if n < 2:
        raise ValueError("ICC needs at least two cases")
    grand = data.mean()
    ss_rows = k * float(((data.mean(axis=1) - grand) ** 2).sum())
    ss_cols = n * float(((data.mean(axis=0) - grand) ** 2).sum())
    ss_total = float(((data - grand) ** 2).sum())
    ss_err = ss_total - ss_rows - ss_cols
    msr = ss_rows / (n - 1)
    msc = ss_cols / (k - 1)
    mse = ss_err / ((n - 1) * (k - 1))
    denom = msr + (k - 1) * mse + k * (msc - mse) / n
    if denom == 0.0:
        return 1.0 if ss_total == 0.0 else float("nan")
    return float((msr - mse) / denom)


@dataclass(frozen=True)
class Calibration:
    """How well predicted probabilities match observed frequencies.

    Attributes
    ----------
    brier:
        Mean squared error of the probabilities.
    ece:
        Expected calibration error over ``bins`` equal-width bins.
    intercept, slope:
        Logistic recalibration fit ``logit P(y) = intercept + slope * logit(p)``
        (ideal: 0 and 1).
    bins:
        Per bin: (mean predicted, observed frequency, count).
    """

    brier: float
    ece: float
    intercept: float
    slope: float
    bins: list[tuple[float, float, int]]


def calibration(y_true: np.ndarray, prob: np.ndarray, *, n_bins: int = 10) -> Calibration:
    """Brier score, expected calibration error and the calibration intercept/slope."""
    y = np.asarray(y_true, dtype=np.float64)
    p = np.clip(np.asarray(prob, dtype=np.float64), 1e-6, 1 - 1e-6)
    brier = float(np.mean((p - y) ** 2))
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)
    bins: list[tuple[float, float, int]] = []
    ece = 0.0
    for b in range(n_bins):
        sel = which == b
        if not sel.any():
            continue
        mp, obs, cnt = float(p[sel].mean()), float(y[sel].mean()), int(sel.sum())
        bins.append((mp, obs, cnt))
        ece += cnt / y.size * abs(mp - obs)
    logit = np.log(p / (1 - p))
    if 0 < y.sum() < y.size:
        coef, intercept = fit_logistic(logit[:, None], y, l2=0.0)
        slope = float(coef[0])
    else:
        intercept, slope = float("nan"), float("nan")
    return Calibration(brier=brier, ece=float(ece), intercept=float(intercept), slope=slope, bins=bins)
