"""Agreement and overlap metrics used by the evaluations (numpy in, numbers out).

Segmentation overlap (Dice, IoU), per-class sensitivity and specificity from a
confusion matrix (one class against the rest), Gwet's AC1 for agreement between
two raters on a nominal scale, and percentile bootstrap confidence intervals
over cases.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ClassStats",
    "bootstrap_ci",
    "confusion_matrix",
    "dice",
    "gwet_ac1",
    "iou",
    "macro_sensitivity_specificity",
    "per_class_stats",
]

logger = logging.getLogger(__name__)


def dice(pred: np.ndarray, ref: np.ndarray, *, empty: float = 1.0) -> float:
    """Dice similarity coefficient of two boolean masks.

    Parameters
    ----------
    pred, ref
        Masks of the same shape (anything non-zero counts as inside).
    empty
        Value returned when both masks are empty (agreement on absence).
    """
    a = np.asarray(pred).astype(bool)
    b = np.asarray(ref).astype(bool)
    if a.shape != b.shape:
        raise ValueError(f"mask shapes differ: {a.shape} vs {b.shape}")
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return float(empty)
    return 2.0 * float(np.logical_and(a, b).sum()) / total


def iou(pred: np.ndarray, ref: np.ndarray, *, empty: float = 1.0) -> float:
    """Intersection over union (Jaccard index) of two boolean masks; ``empty`` when both are empty."""
    a = np.asarray(pred).astype(bool)
    b = np.asarray(ref).astype(bool)
    if a.shape != b.shape:
        raise ValueError(f"mask shapes differ: {a.shape} vs {b.shape}")
    union = int(np.logical_or(a, b).sum())
    if union == 0:
        return float(empty)
    return float(np.logical_and(a, b).sum()) / union


def confusion_matrix(reference: Sequence[Hashable], predicted: Sequence[Hashable], classes: Sequence[Hashable]) -> np.ndarray:
    """Counts ``[i, j]`` of cases with reference ``classes[i]`` and prediction ``classes[j]``.

    Raises
    ------
    ValueError
        If the sequences differ in length or hold a value not in ``classes``.
    """
    if len(reference) != len(predicted):
        raise ValueError(f"{len(reference)} reference labels but {len(predicted)} predictions")
    index = {c: k for k, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for r, p in zip(reference, predicted):
        if r not in index or p not in index:
            raise ValueError(f"label {r if r not in index else p!r} is not one of {list(classes)}")
        matrix[index[r], index[p]] += 1
    return matrix


@dataclass(frozen=True)
class ClassStats:
    """One class against the rest: counts, sensitivity and specificity (``nan`` when undefined)."""

    label: Hashable
    tp: int
    fn: int
    fp: int
    tn: int

    @property
    def sensitivity(self) -> float:
        """``tp / (tp + fn)``: share of the class's cases found."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def specificity(self) -> float:
        """``tn / (tn + fp)``: share of the other cases not called this class."""
        return self.tn / (self.tn + self.fp) if self.tn + self.fp else float("nan")


def per_class_stats(matrix: np.ndarray, classes: Sequence[Hashable]) -> list[ClassStats]:
    """Sensitivity and specificity of each class, one against the rest, from a confusion matrix."""
    m = np.asarray(matrix, dtype=np.int64)
    total = int(m.sum())
    out = []
    for k, label in enumerate(classes):
        tp = int(m[k, k])
        fn = int(m[k].sum()) - tp
        fp = int(m[:, k].sum()) - tp
        out.append(ClassStats(label=label, tp=tp, fn=fn, fp=fp, tn=total - tp - fn - fp))
    return out


def macro_sensitivity_specificity(matrix: np.ndarray, classes: Sequence[Hashable]) -> tuple[float, float]:
    """Mean over classes present in the reference of sensitivity, and over all classes of specificity."""
    stats = per_class_stats(matrix, classes)
    sens = [s.sensitivity for s in stats if s.tp + s.fn > 0]
    spec = [s.specificity for s in stats if s.tn + s.fp > 0]
    return (float(np.mean(sens)) if sens else float("nan"), float(np.mean(spec)) if spec else float("nan"))


def gwet_ac1(rater_a: Sequence[Hashable], rater_b: Sequence[Hashable], classes: Sequence[Hashable] | None = None) -> float:
    """Gwet's first-order agreement coefficient (AC1) of two raters on a nominal scale.

    ``AC1 = (pa - pe) / (1 - pe)`` with ``pa`` the observed agreement and
    ``pe = sum_k pi_k (1 - pi_k) / (K - 1)``, ``pi_k`` the mean of the two raters'
    shares of category ``k`` (Gwet 2008). Unlike Cohen's kappa it stays
    stable when one category dominates (most discs are normal).

    Parameters
    ----------
    rater_a, rater_b
        The two raters' labels for the same cases.
    classes
        All categories of the scale (``K`` counts them, used or not); default:
        the categories either rater used.

    Returns
    -------
    float
        AC1 in ``[-1, 1]``; 1.0 when both raters agree on every case and only one category exists.
    """
    if len(rater_a) != len(rater_b):
        raise ValueError(f"raters labelled different numbers of cases: {len(rater_a)} vs {len(rater_b)}")
    if len(rater_a) == 0:
        raise ValueError("no cases to compute agreement on")
    cats = list(classes) if classes is not None else sorted(set(rater_a) | set(rater_b), key=str)
    m = confusion_matrix(rater_a, rater_b, cats)
    n = float(m.sum())
    pa = float(np.trace(m)) / n
    k = len(cats)
    if k < 2:
        return 1.0
    pi = (m.sum(axis=0) + m.sum(axis=1)) / (2.0 * n)
    pe = float(np.sum(pi * (1.0 - pi))) / (k - 1)
    if pe >= 1.0:
        return 1.0
    return (pa - pe) / (1.0 - pe)


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float],
    n_cases: int,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of a statistic over cases.

    Parameters
    ----------
    statistic
        Called with an array of case indices (drawn with replacement) and
        returns the statistic on those cases; ``nan`` results are skipped.
    n_cases
        Number of cases to resample.
    n_resamples
        Number of bootstrap resamples.
    confidence
        Two-sided level, e.g. 0.95.
    seed
        Seed of the resampling generator (same seed, same interval).

    Returns
    -------
    tuple
        ``(low, high)``; ``(nan, nan)`` when no resample gave a number.
    """
    if n_cases <= 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_resamples):
        value = float(statistic(rng.integers(0, n_cases, size=n_cases)))
        if not np.isnan(value):
            values.append(value)
    if not values:
        return float("nan"), float("nan")
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(np.asarray(values), [alpha, 1.0 - alpha])
    return float(low), float(high)
