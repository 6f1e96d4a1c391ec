"""Level assignment on a lumbar phantom: angled axial stacks, a missing sagittal, mismatched frames."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference.levels import DiscLevel, assign_from_discs, assign_levels, find_disc_levels
from inference.levels.phantoms import phantom_sagittal_slices, phantom_studies
from inference.levels.training import prepare_sample
from inference.phantoms.lumbar import generate_lumbar_study
from inference.volume import load_volumes
from tests.inference.levels.shapes import StubNetwork

SEED = 4242


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = generate_lumbar_study(tmp_path_factory.mktemp("levels") / "study", SEED)
    gt = json.loads((root / "ground_truth.json").read_text())
    image, labels, spacing = phantom_sagittal_slices(root, 1)[0]
    canvas = prepare_sample(image, labels, spacing)["label"][0].astype(np.int64)
    return {
        "root": root,
        "gt": gt,
        "axial": load_volumes(root / "dicom" / "ax_t2"),
        "sagittal": load_volumes(root / "dicom" / "sag_t2")[0],
        "perfect": StubNetwork(canvas),  # a network that segments the mid-sagittal slice perfectly
    }


def _gt_discs(gt: dict[str, Any]) -> list[DiscLevel]:
    return [DiscLevel(d["level"], np.array(d["center_lps"]), np.array(d["normal_lps"]), 1.0) for d in gt["discs"]]


def _covered(gt: dict[str, Any]) -> set[str]:
    return {d["level"] for d in gt["discs"] if d["axial_stack"] is not None}


def test_phantom_training_slices(study: dict[str, Any]) -> None:
    assert phantom_studies(study["root"].parent) == [study["root"]]
    slices = phantom_sagittal_slices(study["root"], 3)
    assert len(slices) == 3
    for image, labels, spacing in slices:
        assert image.shape == labels.shape and set(np.unique(labels)) <= {0, 1, 2, 3}
        assert min(spacing) > 0


def test_angled_stacks_take_the_level_of_their_disc(study: dict[str, Any]) -> None:
    gt, axial = study["gt"], study["axial"]
    assert len(axial) == 3
    found = set()
    for volume in axial:
        levels = assign_from_discs(volume, _gt_discs(gt))
        names = {lv.level for lv in levels} - {None}
        assert len(names) == 1  # one stack, one disc
        (level,) = names
        found |= names
        distances = [lv.distance_mm for lv in levels]
        assert min(abs(d) for d in distances if d is not None) < 3.0
        for lv in levels:  # slices beyond the tolerance say which disc was nearest
            assert lv.distance_mm is not None
            if lv.level is None:
                assert abs(lv.distance_mm) > 12.0 and level in lv.warnings[0]
            else:
                assert abs(lv.distance_mm) <= 12.0
    assert found == _covered(gt)


def test_levels_from_the_sagittal_series_with_a_perfect_network(study: dict[str, Any]) -> None:
    gt = study["gt"]
    discs, warnings = find_disc_levels(study["sagittal"], study["perfect"])
    truth = {d["level"]: np.array(d["center_lps"]) for d in gt["discs"]}
    named = {d.name: d for d in discs}
    for level, centre in truth.items():
        assert level in named, (level, sorted(named))
        # the 2D mask centroid on the mid-sagittal slice vs the phantom's 3D disc centre
        assert np.linalg.norm(named[level].center - centre) < 8.0, level
    levels = assign_levels(study["axial"], study["sagittal"], model=study["perfect"])
    reference = [assign_from_discs(v, _gt_discs(gt)) for v in study["axial"]]
    for got, want in zip(levels, reference):
        clear = [i for i, lv in enumerate(want) if lv.distance_mm is not None and abs(lv.distance_mm) < 10.0]
        assert len(clear) >= 3
        assert [got[i].level for i in clear] == [want[i].level for i in clear]
        assert all(lv.method == "sagittal" for lv in got)


def test_missing_sagittal_uses_stack_order_and_agrees_on_a_standard_plan(study: dict[str, Any]) -> None:
    levels = assign_levels(study["axial"], None)
    reference = [assign_from_discs(v, _gt_discs(study["gt"])) for v in study["axial"]]
    for got, want in zip(levels, reference):
        assert {lv.level for lv in got} == {lv.level for lv in want} - {None}
        assert all(lv.method == "stack_order" and lv.warnings[0].startswith("inferred") for lv in got)


def test_mismatched_frame_of_reference_on_a_phantom(study: dict[str, Any]) -> None:
    import copy

    moved = [copy.copy(v) for v in study["axial"]]
    for v in moved:
        v.frame_of_reference_uid = "1.2.3.999"
    moved[0].affine = moved[0].affine.copy()
    moved[0].affine[:3, 3] += (0.0, 0.0, 1000.0)  # another patient position: coordinates disagree
    levels = assign_levels(moved, study["sagittal"], model=study["perfect"])
    assert all(lv.method == "stack_order" for lv in levels[0])
    assert all(any("frame of reference differs" in w for w in lv.warnings) for lv in levels[0])
    for stack in levels[1:]:
        assert all(lv.method == "sagittal" for lv in stack)
        assert sum(lv.level is not None for lv in stack) >= 3
        assert all(any("frame of reference differs" in w for w in lv.warnings) for lv in stack)


def test_phantom_evaluation_with_a_perfect_network(study: dict[str, Any]) -> None:
    from inference.levels.evaluation import evaluate_phantom_study

    result = evaluate_phantom_study(study["perfect"], study["root"])
    assert result.discs == len(study["gt"]["discs"]) and result.discs_named_right == result.discs
    assert result.axial_slices >= 9 and result.axial_right >= 0.9 * result.axial_slices
    # a network that sees nothing names nothing, and its levels come from stack order
    blind = evaluate_phantom_study(StubNetwork(np.zeros((320, 256), np.int64)), study["root"])
    assert blind.discs_named_right == 0
