"""The bundled demo weights: card, checksum, load; and the pipeline on a fresh phantom."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="module")
def phantom_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    sij = pytest.importorskip("inference.phantoms.sij")
    from inference.sij.data import load_case

    study = sij.generate_sij_study(tmp_path_factory.mktemp("sij") / "study", seed=777001)  # not a training seed
    case = load_case(study)
    return case, SijPipeline.from_weights(device="cpu", flip_tta=False)(case.t1, case.stir)


def test_pipeline_reproduces_phantom_anatomy_and_table(phantom_run: tuple[Any, Any]) -> None:
    """Tolerances of the demo weights (v0.4.0 on this phantom: score 4 of 4, quadrants 100 %, bones DSC 0.99,
    FM DSC 0.82; docs/sij.md, "Measured")."""
    case, result = phantom_run
    truth = case.truth
    if (case.t1_labels == SijLabel.FAT_METAPLASIA).any():
        assert result.fm_volume_ml["total"] > 0
    assert abs(result.sparcc_fm_score - truth["sparcc_fm_score"]) <= 3
    uids = list(result.sop_instance_uids)
    agree = [
        bool(result.fm_presence[uids.index(uid), n]) == bool(row[q])
        for uid, row in truth["fm_table"].items()
        for n, q in enumerate(result.fm_table[0].present)
    ]
    assert np.mean(agree) >= 0.9
    assert dice(result.labels == SijLabel.SACRUM, case.t1_labels == SijLabel.SACRUM) > 0.9
    for side in (SijLabel.ILIUM_LEFT, SijLabel.ILIUM_RIGHT):
        assert dice(result.labels == side, case.t1_labels == side) > 0.9
    fm = case.t1_labels == SijLabel.FAT_METAPLASIA
    assert dice(result.labels == SijLabel.FAT_METAPLASIA, fm) >= 0.7
    assert result.axspa_probability is not None and 0.0 <= result.axspa_probability <= 1.0


@pytest.mark.xfail(strict=True, reason="v0.4.0 demo weights miss the issue's FM DSC target (0.85; held-out mean 0.78, "
                                      "0.82 on this phantom); see docs/sij.md")
def test_fm_dice_target_on_phantom(phantom_run: tuple[Any, Any]) -> None:
    case, result = phantom_run
    ref = case.t1_labels == SijLabel.FAT_METAPLASIA
    assert ref.any()
    assert dice(result.labels == SijLabel.FAT_METAPLASIA, ref) >= 0.85
