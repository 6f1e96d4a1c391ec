"""Our top-level packages are named like unrelated PyPI projects; make sure ours are the ones used."""

from __future__ import annotations

import importlib
import importlib.metadata as md
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

OURS = ("config", "storage", "inference", "dicom_node")


@pytest.mark.parametrize("name", ["config", "storage", "inference"])
def test_no_foreign_distribution_shadows_ours(name: str) -> None:
    foreign = [
        dist.metadata["Name"]
        for dist in md.distributions()
        if name in (dist.read_text("top_level.txt") or "").split()
        and dist.metadata["Name"] != "dicom-node"
    ]
    assert not foreign, f"distribution(s) {foreign} also install a top-level '{name}' package"
    # and no distribution is itself called like our package
    with pytest.raises(md.PackageNotFoundError):
        md.distribution(name)


@pytest.mark.parametrize("name", OURS)
def test_imports_resolve_to_this_repository(name: str) -> None:
    module = importlib.import_module(name)
    assert Path(module.__file__).resolve().parent.parent == REPO_ROOT


def test_console_script_is_declared() -> None:
    eps = md.distribution("dicom-node").entry_points
    assert any(ep.name == "dicom-node" and ep.value == "dicom_node.cli:main" for ep in eps)
