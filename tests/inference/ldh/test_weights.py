"""The bundled demo weights: present, checked against their card, loadable into the network."""

from __future__ import annotations

import json

import pytest
import torch

from inference.labels import AxialLabel
from inference.ldh.pipeline import LdhPipeline, load_network
from inference.modelcard import bundled_weights, read_card


def test_demo_weights_load_and_are_checked() -> None:
    path = bundled_weights("ldh")
    if not path.is_file():
        pytest.skip("demo weights not trained yet")
    card = read_card(path)  # raises when the checksum differs
    assert card.name == "ldh" and card.synthetic
    assert "research use only" in card.notice
    raw = json.loads(path.with_suffix(".card.json").read_text())
    assert raw["training_data"]["phantom_seeds"] and raw["metrics"]
    assert path.stat().st_size < 5 * 1024 * 1024
    network, _ = load_network(path)
    out = network(torch.zeros(1, 1, 64, 64))
    assert out.shape == (1, len(AxialLabel), 64, 64)
    pipe = LdhPipeline.from_weights(device="cpu")
    assert pipe.card is not None and pipe.card.sha256 == card.sha256


def test_pipeline_from_settings_uses_configured_weights(tmp_path, settings) -> None:  # type: ignore[no-untyped-def]
    from config.settings import load_settings
    from inference.modelcard import WeightsError

    if not bundled_weights("ldh").is_file():
        pytest.skip("demo weights not trained yet")
    pipe = LdhPipeline.from_settings(settings)
    assert pipe.card is not None and pipe.card.name == "ldh" and pipe.device.type in ("cpu", "cuda")
    assert pipe.inferer.flip_tta  # models.flip_tta unset: the card's choice
    off = load_settings(environ={"DICOM_NODE_MODELS__FLIP_TTA": "false"}, storage_dir=tmp_path)
    assert off.models.flip_tta is False and not LdhPipeline.from_settings(off).inferer.flip_tta
    missing = load_settings(environ={}, storage_dir=tmp_path, models={"ldh_weights": str(tmp_path / "site.pt")})
    with pytest.raises(WeightsError, match="does not exist"):
        LdhPipeline.from_settings(missing)


def test_from_settings_takes_a_ready_level_network(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The node passes the level network it loaded once; the configured file is then not read."""
    from config.settings import load_settings
    from inference.levels import LevelsModelError

    if not bundled_weights("ldh").is_file():
        pytest.skip("demo weights not trained yet")
    broken = load_settings(environ={}, storage_dir=tmp_path, models={"levels_weights": str(tmp_path / "levels.pt")})
    with pytest.raises(LevelsModelError):
        LdhPipeline.from_settings(broken)
    assert LdhPipeline.from_settings(broken, levels_model=None).levels_model is None
    ready = torch.nn.Identity()
    assert LdhPipeline.from_settings(broken, levels_model=ready).levels_model is ready
