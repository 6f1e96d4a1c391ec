"""``dicom-node synth``: folders per seed, progress lines, worker processes, missing generators."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from dicom_node.cli import main
from dicom_node.commands import synth


def fake_generate(out_dir: Path, seed: int) -> Path:
    """A cheap stand-in generator (imported by the worker processes by name)."""
    out_dir.mkdir(parents=True)
    (out_dir / "ground_truth.json").write_text(json.dumps({"seed": seed}))
    return out_dir


@pytest.fixture
def fake_kind(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(synth.GENERATORS, "fake", (__name__, "fake_generate"))
    return "fake"


def _args(kind: str, out: Path, seed: int, count: int, workers: int = 2) -> argparse.Namespace:
    return argparse.Namespace(kind=kind, out=str(out), seed=seed, count=count, workers=workers)


@pytest.mark.parametrize("workers", [1, 2])
def test_count_writes_one_folder_per_seed(
    tmp_path: Path, fake_kind: str, workers: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert synth.run(_args(fake_kind, tmp_path, 7, 3, workers)) == 0
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert folders == ["fake-7", "fake-8", "fake-9"]
    for name in folders:
        seed = int(name.split("-")[1])
        assert json.loads((tmp_path / name / "ground_truth.json").read_text()) == {"seed": seed}
    lines = capsys.readouterr().out.splitlines()
    progress = [line for line in lines if line.startswith("[")]
    assert [line.split("]")[0] for line in progress] == ["[1/3", "[2/3", "[3/3"]
    assert "(1 worker(s))" in lines[-1] if workers == 1 else "(2 worker(s))" in lines[-1]


def test_bad_count_and_missing_generator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(synth.GENERATORS, "ghost", ("inference.phantoms.no_such_module", "generate"))
    assert synth.run(_args("ghost", tmp_path, 0, 1)) == 2
    assert "not available" in capsys.readouterr().err
    monkeypatch.setitem(synth.GENERATORS, "fake", (__name__, "fake_generate"))
    assert synth.run(_args("fake", tmp_path, 0, 0)) == 2
    assert not list(tmp_path.iterdir())


def test_cli_parses_and_dispatches(tmp_path: Path, fake_kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", fake_kind, "--out", str(tmp_path), "--seed", "21", "--count", "2", "--workers", "1"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake-21", "fake-22"]
    out = capsys.readouterr().out
    assert "[1/2] fake seed 21" in out and "[2/2] fake seed 22" in out


def test_cli_lists_both_phantoms() -> None:
    with pytest.raises(SystemExit):
        main(["synth", "knee", "--out", "x"])
    assert set(synth.GENERATORS) >= {"lumbar", "sij"}
