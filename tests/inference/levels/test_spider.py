"""SPIDER loading, the patient split, the metrics, and the junction rule on real slices (fixtures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inference.labels import SagittalLabel
from inference.levels import LevelsDataError, count_levels
from inference.levels.evaluation import SPIDER_NOMINAL_SPACING, dice, evaluate_slice, match_components, summarise
from inference.levels.spider import load_spider, mask_to_labels, split_patients

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "spider"
#: Reference counts, checked by eye (tests/fixtures/spider/README.md).
EXPECTED = {("018", 52): 6, ("035", 54): 9, ("057", 62): 8}
#: Of those, the top disc of 035 and 057 lies less than half a segment below the top edge: not counted.
AT_TOP_EDGE = {("018", 52): 0, ("035", 54): 1, ("057", 62): 1}


@pytest.fixture(scope="module")
def fixture_slices():  # type: ignore[no-untyped-def]
    return load_spider(FIXTURES)


def test_mask_values_map_to_sagittal_labels() -> None:
    mask = np.array([[0, 29], [76, 150]], np.uint8)
    np.testing.assert_array_equal(
        mask_to_labels(mask), [[0, SagittalLabel.DISC], [SagittalLabel.VERTEBRA, SagittalLabel.CANAL]]
    )
    with pytest.raises(LevelsDataError, match="unknown values"):
        mask_to_labels(np.array([[0, 30]], np.uint8))


def test_load_spider_reads_the_fixtures(fixture_slices) -> None:  # type: ignore[no-untyped-def]
    assert [(s.patient, s.slice_number) for s in fixture_slices] == list(EXPECTED)
    for s in fixture_slices:
        assert s.image.shape == s.labels.shape == (640, 512)
        assert set(np.unique(s.labels)) <= {0, 1, 2, 3}
    with pytest.raises(LevelsDataError):
        load_spider(FIXTURES / "missing")


def test_split_is_by_patient_and_seeded() -> None:
    ids = [f"{i:03d}" for i in range(31)] * 8  # eight slices each
    train, test = split_patients(ids, 0.2, seed=0)
    assert len(test) == 6 and len(train) == 25
    assert not set(train) & set(test)
    assert split_patients(ids, 0.2, seed=0) == (train, test)
    assert split_patients(ids, 0.2, seed=1) != (train, test)


def test_junction_rule_on_real_reference_masks(fixture_slices) -> None:  # type: ignore[no-untyped-def]
    for s in fixture_slices:
        count = count_levels(s.labels, SPIDER_NOMINAL_SPACING)
        key = (s.patient, s.slice_number)
        assert len(count.discs) == EXPECTED[key] - AT_TOP_EDGE[key], s.path.name
        assert count.names[-1] == "L5/S1" and count.names[-2] == "L4/L5"
        assert count.sacrum_found
        # the L5/S1 disc is the lowest one, in the lower half of the image
        assert count.junction is not None and count.junction.centroid[0] > 320


def test_dice_and_matching() -> None:
    a = np.zeros((10, 10), bool)
    a[2:6, 2:6] = True
    b = np.zeros((10, 10), bool)
    b[4:8, 2:6] = True
    assert dice(a, b) == pytest.approx(0.5)
    assert dice(np.zeros(3, bool), np.zeros(3, bool)) == 1.0
    la = a.astype(int)
    lb = b.astype(int) * 7
    assert match_components(la, lb, min_iou=0.3) == {1: 7}
    assert match_components(la, lb, min_iou=0.5) == {}


def test_evaluate_slice_against_itself_and_with_a_missed_disc(fixture_slices) -> None:  # type: ignore[no-untyped-def]
    ref = fixture_slices[0].labels
    perfect = evaluate_slice("x", ref, ref)
    assert perfect.dice_disc == 1.0 and perfect.count_right and perfect.lumbar_right and perfect.junction_right
    # remove the L3/L4 disc: recall drops, names above it shift, junction stays right
    count = count_levels(ref, SPIDER_NOMINAL_SPACING)
    missed = ref.copy()
    missed[count.components == count.names.index("L3/L4") + 1] = SagittalLabel.VERTEBRA
    result = evaluate_slice("x", missed, ref)
    assert result.detected == result.ref_discs - 1 and result.pred_discs == result.ref_discs - 1
    assert result.junction_right and not result.count_right and not result.lumbar_right
    # remove L5/S1: the junction moves up one disc, every name is wrong
    no_junction = ref.copy()
    no_junction[count.components == len(count.discs)] = SagittalLabel.VERTEBRA
    shifted = evaluate_slice("x", no_junction, ref)
    assert not shifted.junction_right and not shifted.count_right
    summary = summarise([perfect, result, shifted], patients=1)
    assert summary.count_right == pytest.approx(1 / 3)
    assert summary.disc_recall == pytest.approx((3 * perfect.ref_discs - 2) / (3 * perfect.ref_discs))
    assert summary.disc_precision == 1.0


def test_training_folds_partition_the_training_patients() -> None:
    from dicom_node.commands._levels import train_fold

    ids = [f"{i:03d}" for i in range(31)]
    train, test = split_patients(ids * 8, 0.2, seed=0)
    folds = [train_fold(train, f"{i}/5") for i in range(5)]
    assert sorted(p for fold in folds for p in fold) == train
    assert not set().union(*folds) & set(test)
    assert [len(f) for f in folds] == [5, 5, 5, 5, 5]
    for bad in ("5/5", "x", "1/0"):
        with pytest.raises(ValueError):
            train_fold(train, bad)
