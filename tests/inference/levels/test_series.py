"""The junction the slices of one sagittal series agree on, on hand-drawn label maps."""

from __future__ import annotations

import pytest

from inference.labels import SagittalLabel
from inference.levels import count_levels
from inference.levels.junction import LevelCount
from inference.levels.series import junction_disagreement, series_junction
from tests.inference.levels.shapes import draw_spine

SPACING = (1.0, 1.0)


def _slice(n_discs: int = 5, *, band: bool = False) -> LevelCount:
    labels, centres = draw_spine(shape=(340, 256), n_discs=n_discs, below="sacrum")
    if band:  # a disc-like band a full segment below the junction, inside a labelled sacrum
        row = int(centres[-1][0]) + 48
        labels[row - 4 : row + 4, 80:150] = SagittalLabel.DISC
    return count_levels(labels, SPACING)


def test_slices_agreeing_on_the_junction_give_no_warning() -> None:
    counts = [_slice() for _ in range(5)]
    agreed = series_junction(counts, SPACING)
    assert agreed is not None
    junction_mm, segment_mm = agreed
    assert junction_mm == pytest.approx(counts[0].discs[-1].centroid[0])
    assert segment_mm == pytest.approx(48.0)
    assert all(junction_disagreement(c, counts, SPACING) is None for c in counts)


def test_a_slice_missing_its_junction_or_with_a_band_below_is_flagged() -> None:
    missing = _slice(4)  # drawn from the same top: its lowest disc is the neighbours' L4/L5
    band = _slice(band=True)
    counts = [_slice(), _slice(), _slice(), missing, band]
    assert len(band.discs) == 6
    above = junction_disagreement(missing, counts, SPACING)
    below = junction_disagreement(band, counts, SPACING)
    assert above is not None and "1.0 segments above" in above
    assert below is not None and "1.0 segments below" in below
    assert junction_disagreement(counts[0], counts, SPACING) is None


def test_no_majority_or_too_few_slices_says_nothing() -> None:
    split = [_slice(), _slice(), _slice(4), _slice(4)]
    assert series_junction(split, SPACING) is None
    assert junction_disagreement(split[0], split, SPACING) is None
    assert series_junction([_slice(), _slice()], SPACING) is None
