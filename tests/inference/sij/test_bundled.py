"""The bundled demo weights: card, checksum, load; and the pipeline on a fresh phantom."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inference.labels import SijLabel
from inference.metrics import dice
from inference.modelcard import bundled_weights, read_card
from inference.sij.classifier import FEATURE_NAMES
from inference.sij.pipeline import SijPipeline


def test_demo_weights_load_with_card() -> None:
    path = bundled_weights("sij")
    card = read_card(path)
    assert card.synthetic and "research" in card.notice
    assert card.extra["classifier"]["feature_names"] == list(FEATURE_NAMES)
    pipe = SijPipeline.from_weights(device="cpu")
    assert pipe.model is not None and pipe.model.sha256 == card.sha256
    assert pipe.classifier is not None and 0 < pipe.classifier.threshold < 1


def test_pipeline_reproduces_phantom_ground_truth(tmp_path: Path) -> None:
    sij = pytest.importorskip("inference.phantoms.sij")
    from inference.sij.data import load_case

    study = sij.generate_sij_study(tmp_path / "study", seed=777001)  # not a training seed
    case = load_case(study)
    result = SijPipeline.from_weights(device="cpu", flip_tta=False)(case.t1, case.stir)
    truth = case.truth
    ref_fm = case.t1_labels == SijLabel.FAT_METAPLASIA
    if ref_fm.any():
        assert dice(result.labels == SijLabel.FAT_METAPLASIA, ref_fm) > 0.6
    else:
        assert result.fm_volume_ml["total"] < 0.5
    assert abs(result.sparcc_fm_score - truth["sparcc_fm_score"]) <= 6
    uids = list(result.sop_instance_uids)
    agree = [
        bool(result.fm_presence[uids.index(uid), n]) == bool(row[q])
        for uid, row in truth["fm_table"].items()
        for n, q in enumerate(result.fm_table[0].present)
    ]
    assert np.mean(agree) >= 0.85
    bones = dice(result.labels == SijLabel.SACRUM, case.t1_labels == SijLabel.SACRUM)
    assert bones > 0.85
    assert 0.0 <= (result.axspa_probability or 0.0) <= 1.0
