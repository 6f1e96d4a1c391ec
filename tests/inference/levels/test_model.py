"""The network's pre/post-processing and the bundled demo weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.levels import LevelsModel, LevelsModelError, count_levels, load_levels_model
from inference.levels.evaluation import SPIDER_NOMINAL_SPACING, evaluate_slices
from inference.levels.junction import find_discs
from inference.levels.model import CANVAS, fit_to_canvas, plan_fit, probabilities_to_labels
from inference.levels.spider import load_spider
from inference.modelcard import bundled_weights

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "spider"


@pytest.mark.parametrize(
    ("shape", "spacing", "size"),
    [((640, 512), (1.0, 1.0), (320, 256)), ((512, 512), (0.6, 0.6), (256, 256)), ((256, 512), (1.2, 0.6), (256, 256))],
)
def test_fit_keeps_the_physical_aspect(shape: tuple[int, int], spacing: tuple[float, float], size: tuple[int, int]) -> None:
    fit = plan_fit(shape, spacing)
    assert fit.size == size
    assert fit.offset == ((CANVAS[0] - size[0]) // 2, (CANVAS[1] - size[1]) // 2)


def test_post_processing_undoes_the_fit() -> None:
    image = np.zeros((300, 400), np.float32)
    image[100:150, 200:300] = 1.0
    tensor, fit = fit_to_canvas(image)
    assert tuple(tensor.shape) == (1, *CANVAS)
    # "probabilities": class 1 where the canvas is bright
    probs = torch.cat([1 - tensor, tensor, torch.zeros_like(tensor), torch.zeros_like(tensor)])
    labels, confidence = probabilities_to_labels(probs, fit)
    assert labels.shape == image.shape == confidence.shape
    assert np.mean(labels[image > 0] == 1) > 0.95 and np.mean(labels[image == 0] == 0) > 0.95


def test_bundled_weights_load_with_their_card() -> None:
    model = load_levels_model()
    assert isinstance(model, LevelsModel) and model.card is not None
    assert model.card.name == "levels" and len(model.card.sha256) == 64
    assert "research use only" in model.card.intended_use
    with torch.no_grad():
        out = model(torch.zeros(1, 1, *CANVAS))
    assert tuple(out.shape) == (1, 4, *CANVAS)


def test_tampered_or_missing_weights_are_refused(tmp_path: Path) -> None:
    src = bundled_weights("levels")
    copy = tmp_path / "levels.pt"
    shutil.copy(src, copy)
    shutil.copy(src.with_suffix(".card.json"), tmp_path / "levels.card.json")
    data = bytearray(copy.read_bytes())
    data[-100] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(LevelsModelError, match="checksum"):
        load_levels_model(copy)
    with pytest.raises(LevelsModelError):
        load_levels_model(tmp_path / "absent.pt")


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            "018_slice52.png",
            marks=pytest.mark.xfail(
                strict=True, reason="known failure of weights 0.1.0 and 0.2.0: patient 018's L5/S1 is not matched on this slice (docs/levels.md)"
            ),
        ),
        "035_slice54.png",
        "057_slice62.png",
    ],
)
def test_bundled_model_finds_the_junction_on_held_out_slices(name: str) -> None:
    """The junction finder on real held-out slices, with the network's masks."""
    model = load_levels_model()
    (s,) = [s for s in load_spider(FIXTURES) if s.path.name == name]
    (result,) = evaluate_slices(model, [(s.path.name, s.image, s.labels)])
    assert result.junction_right, result
    assert result.lumbar_right, result
    assert result.dice_disc > 0.8, result


def test_reference_masks_of_the_fixtures_give_the_expected_counts() -> None:
    slices = load_spider(FIXTURES)
    # the eye counts of the fixtures' README include a disc near the top edge on 035 and 057 ...
    assert [len(find_discs(s.labels, SPIDER_NOMINAL_SPACING, cranial_fraction=0.0)[0]) for s in slices] == [6, 9, 8]
    # ... which the rule leaves out: its centre lies less than half a segment below the edge
    assert [len(count_levels(s.labels, SPIDER_NOMINAL_SPACING).discs) for s in slices] == [6, 8, 7]
