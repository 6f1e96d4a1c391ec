"""``dicom-node evaluate ldh`` in two-rater mode and the train/evaluate argument parsers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from dicom_node.commands import _ldh


def _labels(path: Path, uid: str, grades: list[tuple[str, int, str | None]]) -> None:
    discs = [{"level": lv, "msu_size": s, "zone": z, "side": None, "axial_stack": 0} for lv, s, z in grades]
    path.write_text(json.dumps({"study_instance_uid": uid, "discs": discs}))


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    _ldh.add_train_arguments(parser)
    return parser


def test_two_raters_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _labels(tmp_path / "a" / "s1.json", "1.1", [("L4/L5", 2, "B"), ("L5/S1", 0, None)])
    _labels(tmp_path / "b" / "s1.json", "1.1", [("L4/L5", 3, "B"), ("L5/S1", 0, None)])
    parser = argparse.ArgumentParser()
    _ldh.add_evaluate_arguments(parser)
    out_json = tmp_path / "m.json"
    args = parser.parse_args(
        ["--rater-a", str(tmp_path / "a"), "--rater-b", str(tmp_path / "b"), "--bootstrap", "20", "--json", str(out_json)]
    )
    assert _ldh.run_evaluate(args) == 0
    text = capsys.readouterr().out
    assert "1 studies, 2 disc levels, 1 herniations" in text
    metrics = json.loads(out_json.read_text())
    assert metrics["localisation"]["sensitivity"] == 1.0
    assert metrics["grading"]["confusion_matrix"]["counts"][2][3] == 1


def test_per_case_lists_every_level_and_marks_disagreements(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _labels(tmp_path / "a" / "s1.json", "1.1", [("L4/L5", 2, "B"), ("L5/S1", 0, None), ("L3/L4", 1, "AB")])
    _labels(tmp_path / "b" / "s1.json", "1.1", [("L4/L5", 3, "B"), ("L5/S1", 0, None), ("L3/L4", 1, "AB")])
    parser = argparse.ArgumentParser()
    _ldh.add_evaluate_arguments(parser)
    out_json = tmp_path / "m.json"
    args = parser.parse_args(["--rater-a", str(tmp_path / "a"), "--rater-b", str(tmp_path / "b"), "--bootstrap", "5",
                              "--per-case", "--json", str(out_json)])
    assert _ldh.run_evaluate(args) == 0
    rows = {line.split()[1]: line for line in capsys.readouterr().out.splitlines() if line.startswith("1.1 ")}
    assert set(rows) == {"L3/L4", "L4/L5", "L5/S1"}
    assert rows["L4/L5"].split()[2:4] == ["2-B", "3-B"] and rows["L4/L5"].rstrip().endswith("*")
    assert rows["L3/L4"].split()[2:4] == ["1-AB", "1-AB"] and not rows["L3/L4"].rstrip().endswith("*")
    assert rows["L5/S1"].split()[2:4] == ["none", "none"]
    cases = json.loads(out_json.read_text())["cases"]
    assert [(c["level"], c["ref_size"], c["pred_size"]) for c in cases] == [("L4/L5", 2, 3), ("L5/S1", 0, 0), ("L3/L4", 1, 1)]
    # without --per-case the JSON keeps its former keys only
    args = parser.parse_args(["--rater-a", str(tmp_path / "a"), "--rater-b", str(tmp_path / "b"), "--bootstrap", "5",
                              "--json", str(out_json)])
    assert _ldh.run_evaluate(args) == 0
    assert "cases" not in json.loads(out_json.read_text())


def test_rater_flags_go_together(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    _ldh.add_evaluate_arguments(parser)
    assert _ldh.run_evaluate(parser.parse_args(["--rater-a", str(tmp_path)])) == 2


def test_train_arguments_and_seed_ranges() -> None:
    parser = train_parser()
    args = parser.parse_args(["--synth-seeds", "3:7", "--epochs", "2", "--threads", "1"])
    assert args.synth_seeds == range(3, 7) and args.epochs == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["--synth-seeds", "7:3"])


def test_train_init_and_tip_weight_arguments(tmp_path: Path) -> None:
    parser = train_parser()
    args = parser.parse_args(["--init", "w.pt", "--tip-weight", "4"])
    assert args.init == Path("w.pt") and args.tip_weight == 4.0
    assert parser.parse_args([]).init is None and parser.parse_args([]).tip_weight == 0.0
    # a missing --init file is refused before any phantom is made
    missing = parser.parse_args(["--init", str(tmp_path / "none.pt"), "--synth-dir", str(tmp_path / "ph")])
    assert _ldh.run_train(missing) == 2
    assert not (tmp_path / "ph").exists()


@pytest.mark.parametrize(
    ("option", "default", "good", "bad"),
    [
        # the grid of every card without preprocessing.pixdim_mm
        ("pixdim", 1.0, ("0.75", 0.75), ("0", "-1", "fine", "50")),
        # 2D: the input of every card without preprocessing.context_slices
        ("context", 0, ("1", 1), ("-1", "3", "one")),
        # None: the bundled architecture
        ("channels", None, ("32,64,128,256", (32, 64, 128, 256)), ("32", "32,x", "32,0")),
    ],
)
def test_train_bounded_arguments(option: str, default: object, good: tuple[str, object], bad: tuple[str, ...]) -> None:
    parser = train_parser()
    assert getattr(parser.parse_args([]), option) == default
    assert getattr(parser.parse_args([f"--{option}", good[0]]), option) == good[1]
    for value in bad:
        with pytest.raises(SystemExit):
            parser.parse_args([f"--{option}", value])


def test_train_soft_labels_and_dice_weight_arguments() -> None:
    parser = train_parser()
    defaults = parser.parse_args([])
    assert defaults.soft_labels is False and defaults.dice_weight == 1.0  # what every run before them did
    args = parser.parse_args(["--soft-labels", "--dice-weight", "0.5"])
    assert args.soft_labels is True and args.dice_weight == 0.5


def test_train_on_a_phantom_with_soft_labels_writes_a_card_the_pipeline_loads(tmp_path: Path) -> None:
    """One step end to end: phantom made, slices prepared as shares, weights and card written and loadable."""
    from inference.ldh.pipeline import LdhPipeline

    args = train_parser().parse_args([
        "--synth-seeds", "3:5", "--synth-dir", str(tmp_path / "ph"), "--out", str(tmp_path / "run"),
        "--soft-labels", "--dice-weight", "0.5", "--pixdim", "1.5", "--patch", "32", "--channels", "4,8",
        "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--val-fraction", "0.5",
        "--device", "cpu", "--threads", "1", "--no-progress",
    ])
    assert _ldh.run_train(args) == 0
    card = json.loads((tmp_path / "run" / "ldh.card.json").read_text())
    assert card["training"]["soft_labels"] is True and card["training"]["dice_weight"] == 0.5
    assert card["training_data"]["phantom_seeds"] == [3, 5] and len(card["training_data"]["studies"]) == 1
    pipe = LdhPipeline.from_weights(tmp_path / "run" / "ldh.pt", device="cpu", use_level_finder=False)
    assert pipe.pixdim == 1.5 and pipe.card is not None and pipe.card.sha256 == card["sha256"]
