"""axSpA vs non-axSpA classifier on segmentation-derived features.

A ridge-penalised logistic regression on standardised features, recalibrated by Platt
scaling fitted on cross-validated (out-of-fold) scores, with the decision threshold
(Youden's J on the same out-of-fold probabilities) stored beside the coefficients. The
source study did not publish its classifier's features; ours are listed in
:data:`FEATURE_NAMES` and computed by :func:`extract_features`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inference.sij.errors import SijModelError
from inference.sij.quadrants import QUADRANT_NAMES
from inference.sij.stats import fit_logistic, sigmoid

__all__ = ["FEATURE_NAMES", "AxspaClassifier", "Prediction", "extract_features", "fit_classifier"]

logger = logging.getLogger(__name__)

#: Feature names in design-matrix order.
FEATURE_NAMES: tuple[str, ...] = (
    "sparcc_fm_score",  #: 0-40 on the five scoring slices
    "fm_volume_log_ml",  #: log(1 + total FM volume in mL)
    "fm_quadrants_involved",  #: distinct quadrants with FM on any scoring slice, 0-8
    "fm_slices_involved",  #: slices of the whole volume with any FM
    "fm_bilateral",  #: 1 when both joints carry FM
    "fm_iliac_fraction",  #: share of FM voxels on the iliac side (0 without FM)
    "oedema_assessed",  #: 1 when a STIR series was segmented for oedema
    "oedema_quadrants",  #: quadrant-slices with oedema on the scoring slices (0 when not assessed)
)

_ILIAC = np.array(["_iliac_" in n for n in QUADRANT_NAMES])
_LEFT = np.array([n.startswith("left_") for n in QUADRANT_NAMES])


def extract_features(
    *,
    fm_counts: np.ndarray,
    fm_present: np.ndarray,
    scoring_slices: np.ndarray,
    fm_volume_total_ml: float,
    oedema_present: np.ndarray | None = None,
) -> dict[str, float]:
    """The classifier's features from the FM quadrant table (and the oedema table when assessed).

    Parameters
    ----------
    fm_counts, fm_present:
        (slices, 8) voxel counts and presence of FM per quadrant, over the whole volume.
    scoring_slices:
        Indices of the five SPARCC slices.
    fm_volume_total_ml:
        Total FM volume.
    oedema_present:
        (slices, 8) oedema presence, or ``None`` when no STIR was assessed.
    """
    counts = np.asarray(fm_counts, dtype=np.float64)
    present = np.asarray(fm_present, dtype=bool)
    idx = np.asarray(scoring_slices, dtype=np.int64)
    window = present[idx]
    total = counts.sum()
    left = counts[:, _LEFT].sum()
    right = total - left
    features = {
        "sparcc_fm_score": float(window.sum()),
        "fm_volume_log_ml": float(np.log1p(max(fm_volume_total_ml, 0.0))),
        "fm_quadrants_involved": float(window.any(axis=0).sum()),
        "fm_slices_involved": float(present.any(axis=1).sum()),
        "fm_bilateral": float(left > 0 and right > 0),
        "fm_iliac_fraction": float(counts[:, _ILIAC].sum() / total) if total > 0 else 0.0,
        "oedema_assessed": 0.0 if oedema_present is None else 1.0,
        "oedema_quadrants": 0.0 if oedema_present is None else float(np.asarray(oedema_present, bool)[idx].sum()),
    }
    return features


@dataclass(frozen=True)
class Prediction:
    """A classifier's answer for one study.

    Attributes
    ----------
    probability:
        Calibrated probability of axSpA.
    positive:
        ``probability >= threshold``.
    threshold:
        The stored decision threshold.
    features:
        Feature values, by name.
    contributions:
        Per feature, coefficient x standardised value (log-odds before calibration),
        largest magnitude first: the features that drove the answer.
    """

    probability: float
    positive: bool
    threshold: float
    features: dict[str, float]
    contributions: dict[str, float]


@dataclass(frozen=True)
class AxspaClassifier:
    """Fitted parameters; JSON-serialisable with :meth:`to_dict`."""

    feature_names: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    platt_a: float
    platt_b: float
    threshold: float
    version: str = "1"

    def _matrix(self, rows: np.ndarray | list[Mapping[str, float]]) -> np.ndarray:
        if isinstance(rows, np.ndarray):
            x = np.asarray(rows, dtype=np.float64)
        else:
            try:
                x = np.array([[float(r[name]) for name in self.feature_names] for r in rows], dtype=np.float64)
            except KeyError as exc:
                raise SijModelError(f"feature {exc} missing for the axSpA classifier") from exc
        if x.ndim != 2 or x.shape[1] != len(self.feature_names):
            raise SijModelError(f"expected {len(self.feature_names)} features, got shape {x.shape}")
        return (x - np.asarray(self.mean)) / np.asarray(self.scale)

    def raw_logit(self, rows: np.ndarray | list[Mapping[str, float]]) -> np.ndarray:
        """Uncalibrated log-odds."""
        return np.asarray(self._matrix(rows) @ np.asarray(self.coef) + self.intercept)

    def predict_proba(self, rows: np.ndarray | list[Mapping[str, float]]) -> np.ndarray:
        """Calibrated probabilities of axSpA, one per row."""
        return sigmoid(self.platt_a * self.raw_logit(rows) + self.platt_b)

    def predict(self, features: Mapping[str, float]) -> Prediction:
        """Probability, class at the stored threshold and the driving features of one study."""
        z = self._matrix([features])[0]
        contrib = {n: float(c * v) for n, c, v in zip(self.feature_names, self.coef, z)}
        ordered = dict(sorted(contrib.items(), key=lambda kv: -abs(kv[1])))
        prob = float(self.predict_proba([features])[0])
        return Prediction(
            probability=prob,
            positive=prob >= self.threshold,
            threshold=self.threshold,
            features={n: float(features[n]) for n in self.feature_names},
            contributions=ordered,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able parameters."""
        data = asdict(self)
        data["feature_names"] = list(self.feature_names)
        for key in ("mean", "scale", "coef"):
            data[key] = [float(v) for v in data[key]]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AxspaClassifier:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(
                feature_names=tuple(data["feature_names"]),
                mean=tuple(float(v) for v in data["mean"]),
                scale=tuple(float(v) for v in data["scale"]),
                coef=tuple(float(v) for v in data["coef"]),
                intercept=float(data["intercept"]),
                platt_a=float(data["platt_a"]),
                platt_b=float(data["platt_b"]),
                threshold=float(data["threshold"]),
                version=str(data.get("version", "1")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SijModelError(f"axSpA classifier parameters are incomplete: {exc}") from exc

    def save(self, path: Path) -> None:
        """Write the parameters as JSON."""
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> AxspaClassifier:
        """Read parameters written by :meth:`save`."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SijModelError(f"cannot read classifier parameters {path}: {exc}") from exc
        return cls.from_dict(data)


def _youden_threshold(y: np.ndarray, prob: np.ndarray) -> float:
    best, best_t = -1.0, 0.5
    for t in np.unique(prob):
        pred = prob >= t
        sens = (pred & y).sum() / max(y.sum(), 1)
        spec = (~pred & ~y).sum() / max((~y).sum(), 1)
        if sens + spec - 1 > best:
            best, best_t = float(sens + spec - 1), float(t)
    return best_t


def fit_classifier(
    x: np.ndarray,
    y: np.ndarray,
    *,
    feature_names: tuple[str, ...] = FEATURE_NAMES,
    l2: float = 1.0,
    folds: int = 5,
    seed: int = 0,
) -> tuple[AxspaClassifier, np.ndarray]:
    """Fit the classifier, its Platt calibration and its threshold.

    Parameters
    ----------
    x:
        Feature matrix (n, p) in ``feature_names`` order.
    y:
        Labels in {0, 1}.
    folds:
        Cross-validation folds for the out-of-fold scores that calibration and the
        threshold are fitted on.

    Returns
    -------
    tuple
        ``(classifier, out_of_fold_probabilities)``.
    """
    x = np.asarray(x, dtype=np.float64)
    yb = np.asarray(y).astype(bool)
    if yb.all() or not yb.any():
        raise SijModelError("the axSpA classifier needs both classes in its training set")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-8] = 1.0
    z = (x - mean) / scale
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(yb), dtype=np.int64)
    for cls in (False, True):  # stratified folds
        members = rng.permutation(np.flatnonzero(yb == cls))
        fold_of[members] = np.arange(members.size) % folds
    oof = np.zeros(len(yb))
    for f in range(folds):
        test = fold_of == f
        train = ~test
        if not test.any() or yb[train].all() or not yb[train].any():
            continue
        coef, icpt = fit_logistic(z[train], yb[train].astype(float), l2=l2)
        oof[test] = z[test] @ coef + icpt
    coef, icpt = fit_logistic(z, yb.astype(float), l2=l2)
    platt, platt_b = fit_logistic(oof[:, None], yb.astype(float), l2=1e-3)
    platt_a = float(platt[0])
    if platt_a <= 0:  # degenerate out-of-fold scores: keep the raw model
        logger.warning("Platt scaling found no positive slope; using the uncalibrated model")
        platt_a, platt_b = 1.0, 0.0
    oof_prob = sigmoid(platt_a * oof + platt_b)
    clf = AxspaClassifier(
        feature_names=tuple(feature_names),
        mean=tuple(float(v) for v in mean),
        scale=tuple(float(v) for v in scale),
        coef=tuple(float(v) for v in coef),
        intercept=float(icpt),
        platt_a=platt_a,
        platt_b=float(platt_b),
        threshold=_youden_threshold(yb, oof_prob),
    )
    return clf, oof_prob
