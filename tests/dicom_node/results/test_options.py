from __future__ import annotations

from pathlib import Path

from config.settings import load_settings
from dicom_node.results import ResultOptions


def test_options_follow_the_results_section(tmp_path: Path) -> None:
    settings = load_settings(environ={"DICOM_NODE_RESULTS__PDF": "true"}, storage_dir=tmp_path,
                             results={"fractional": True, "include_anatomy": False})
    options = ResultOptions.from_settings(settings.results)
    assert options == ResultOptions(fractional=True, include_anatomy=False, pdf=True)
    assert ResultOptions.from_settings(load_settings(environ={}, storage_dir=tmp_path).results) == ResultOptions()
