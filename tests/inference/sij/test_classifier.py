"""The axSpA classifier: features, calibration on held-out data, threshold, round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inference.sij.classifier import FEATURE_NAMES, AxspaClassifier, extract_features, fit_classifier
from inference.sij.errors import SijModelError
from inference.sij.stats import calibration, delong_auc


def synthetic_table(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows whose label depends noisily on score, volume and oedema."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=n)
    score = np.clip(np.round(12 + 8 * latent + rng.normal(scale=4, size=n)), 0, 40)
    volume = np.log1p(np.clip(2 + 1.5 * latent + rng.normal(size=n), 0, None))
    quads = np.clip(np.round(score / 5), 0, 8)
    slices = np.clip(np.round(quads + rng.normal(size=n)), 0, 20)
    bilateral = (rng.random(n) < 0.5 + 0.3 * np.tanh(latent)).astype(float)
    iliac = np.clip(0.6 + 0.1 * rng.normal(size=n), 0, 1)
    assessed = (rng.random(n) < 0.8).astype(float)
    oedema = assessed * np.clip(np.round(3 + 3 * latent + rng.normal(size=n)), 0, 40)
    x = np.stack([score, volume, quads, slices, bilateral, iliac, assessed, oedema], axis=1)
    y = (rng.random(n) < 1 / (1 + np.exp(-(1.8 * latent - 0.2)))).astype(int)
    return x, y


def test_calibrated_on_held_out_cases() -> None:
    x, y = synthetic_table(600, seed=1)
    clf, oof = fit_classifier(x, y, seed=0)
    assert oof.shape == y.shape
    xt, yt = synthetic_table(2000, seed=2)
    prob = clf.predict_proba(xt)
    assert delong_auc(yt, prob).auc > 0.75
    cal = calibration(yt, prob)
    assert abs(cal.slope - 1) < 0.3 and abs(cal.intercept) < 0.3
    assert abs(prob.mean() - yt.mean()) < 0.05
    assert 0.0 < clf.threshold < 1.0


def test_prediction_names_its_features_and_round_trips(tmp_path: Path) -> None:
    x, y = synthetic_table(300, seed=4)
    clf, _ = fit_classifier(x, y)
    row = dict(zip(FEATURE_NAMES, x[0]))
    pred = clf.predict(row)
    assert pred.positive == (pred.probability >= clf.threshold)
    mags = [abs(v) for v in pred.contributions.values()]
    assert mags == sorted(mags, reverse=True) and set(pred.contributions) == set(FEATURE_NAMES)
    clf.save(tmp_path / "c.json")
    again = AxspaClassifier.load(tmp_path / "c.json")
    assert again.predict_proba(x[:5]) == pytest.approx(clf.predict_proba(x[:5]))
    with pytest.raises(SijModelError):
        clf.predict({"sparcc_fm_score": 3.0})


def test_one_class_is_refused() -> None:
    with pytest.raises(SijModelError):
        fit_classifier(np.ones((10, 8)), np.ones(10))


def test_extract_features_from_tables() -> None:
    counts = np.zeros((7, 8), dtype=int)
    counts[2, 0] = 10  # left iliac upper
    counts[3, 6] = 30  # right sacral upper
    counts[0, 1] = 5  # outside the scoring window
    present = counts > 0
    oedema = np.zeros((7, 8), dtype=bool)
    oedema[3, :2] = True
    f = extract_features(
        fm_counts=counts, fm_present=present, scoring_slices=np.arange(1, 6),
        fm_volume_total_ml=1.0, oedema_present=oedema,
    )
    assert f["sparcc_fm_score"] == 2 and f["fm_quadrants_involved"] == 2
    assert f["fm_slices_involved"] == 3 and f["fm_bilateral"] == 1
    assert f["fm_iliac_fraction"] == pytest.approx(15 / 45)
    assert f["oedema_assessed"] == 1 and f["oedema_quadrants"] == 2
    assert f["fm_volume_log_ml"] == pytest.approx(np.log(2))
    g = extract_features(fm_counts=counts, fm_present=present, scoring_slices=np.arange(1, 6), fm_volume_total_ml=1.0)
    assert g["oedema_assessed"] == 0 and g["oedema_quadrants"] == 0
