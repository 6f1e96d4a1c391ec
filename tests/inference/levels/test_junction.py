"""Disc finding, the lumbosacral junction and the level count on hand-drawn label maps."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from inference.labels import SagittalLabel
from inference.levels import count_levels, level_name
from inference.levels.junction import body_between, cranial_partial, find_discs, sacral_bone
from tests.inference.levels.shapes import draw_spine


def test_level_names_count_up_from_l5s1() -> None:
    assert [level_name(i) for i in range(8)] == [
        "L5/S1", "L4/L5", "L3/L4", "L2/L3", "L1/L2", "T12/L1", "T11/T12", "T10/T11",
    ]
    with pytest.raises(ValueError):
        level_name(-1)


def test_find_discs_centroids_axis_and_thickness() -> None:
    labels, centres = draw_spine(n_discs=4)
    discs, components = find_discs(labels, (0.5, 0.5), min_area_mm2=10)
    assert len(discs) == 4
    np.testing.assert_allclose([d.centroid for d in discs], centres, atol=1e-6)
    for d in discs:
        assert abs(d.axis[1]) == pytest.approx(1.0)  # long axis anterior-posterior
        assert d.thickness_mm == pytest.approx(5.0)  # 10 rows of 0.5 mm
        assert d.length_mm == pytest.approx(35.0)
    assert set(np.unique(components)) == {0, 1, 2, 3, 4}


def test_tilted_disc_axis_follows_the_disc() -> None:
    labels = np.zeros((200, 200), np.uint8)
    rr, cc = np.indices(labels.shape)
    # a band tilted 20 degrees (posterior end lower), 10 px thick
    angle = np.radians(20)
    across = (rr - 100) * np.cos(angle) - (cc - 100) * np.sin(angle)
    along = (rr - 100) * np.sin(angle) + (cc - 100) * np.cos(angle)
    labels[(np.abs(across) < 5) & (np.abs(along) < 30)] = SagittalLabel.DISC
    (disc,), _ = find_discs(labels)
    assert np.degrees(np.arctan2(disc.axis[0], disc.axis[1])) == pytest.approx(20, abs=1.5)


def test_small_components_are_not_discs() -> None:
    labels, _ = draw_spine(n_discs=5)
    labels[5:8, 5:8] = SagittalLabel.DISC  # 9 px of noise
    discs, _ = find_discs(labels, (1.0, 1.0), min_area_mm2=40)
    assert len(discs) == 5


@pytest.mark.parametrize("below", ["sacrum", "none"])
def test_junction_with_sacrum_labelled_or_unlabelled(below: str) -> None:
    labels, centres = draw_spine(n_discs=5, below=below)
    count = count_levels(labels)
    assert count.names == ["L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1"]
    assert count.sacrum_found
    assert count.warnings == []
    assert count.junction is not None and count.junction.centroid == pytest.approx(centres[-1])


def test_seven_discs_reach_the_thoracic_spine() -> None:
    labels, _ = draw_spine(shape=(420, 256), n_discs=7, top=20, pitch=44, below="none")
    count = count_levels(labels)
    assert count.names[0] == "T11/T12" and count.names[-1] == "L5/S1"


def test_field_of_view_not_reaching_the_sacrum_is_flagged() -> None:
    labels, _ = draw_spine(shape=(260, 256), n_discs=5, top=40, below="none")
    count = count_levels(labels)
    assert not count.sacrum_found
    assert any("may not reach the sacrum" in w for w in count.warnings)


def test_lumbar_body_below_the_lowest_disc_is_flagged() -> None:
    labels, _ = draw_spine(n_discs=5, below="lumbar")
    count = count_levels(labels)
    assert not count.sacrum_found
    assert any("may not be L5/S1" in w for w in count.warnings)


def test_rudimentary_lowest_disc_is_flagged() -> None:
    labels, _ = draw_spine(n_discs=5, lowest_length=20)
    count = count_levels(labels)
    assert any("transitional" in w for w in count.warnings)


def test_missing_disc_gap_is_flagged() -> None:
    labels, _ = draw_spine(n_discs=5, skip=2)
    count = count_levels(labels)
    assert len(count.discs) == 4
    assert any("may be missing" in w for w in count.warnings)


def test_fewer_than_three_discs_is_flagged() -> None:
    labels, _ = draw_spine(n_discs=2)
    assert any("fewer than three" in w for w in count_levels(labels).warnings)
    empty = count_levels(np.zeros((50, 50), np.uint8))
    assert empty.discs == [] and empty.junction is None and empty.warnings


def test_disc_off_the_spinal_column_is_dropped() -> None:
    labels, centres = draw_spine(n_discs=5)
    labels[150:160, 200:240] = SagittalLabel.DISC  # a blob behind the canal (facet joint mistaken for a disc)
    count = count_levels(labels)
    assert len(count.discs) == 5
    np.testing.assert_allclose([d.centroid for d in count.discs], centres)


def test_low_confidence_components_are_dropped() -> None:
    labels, _ = draw_spine(n_discs=5)
    probability = np.full(labels.shape, 0.9, np.float32)
    lowest_rows = slice(232, 242)  # the lowest disc of draw_spine's default layout
    probability[lowest_rows, :] = 0.3
    assert len(count_levels(labels, probability=probability).discs) == 4
    assert len(count_levels(labels).discs) == 5


def test_disc_cut_in_two_is_one_disc() -> None:
    labels, centres = draw_spine(n_discs=5)
    labels[136:146, 113:117] = SagittalLabel.VERTEBRA  # the third disc cut into an anterior and a posterior piece
    assert ndimage.label(labels == SagittalLabel.DISC)[1] == 6
    count = count_levels(labels)
    assert count.names == ["L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1"]
    assert count.discs[2].centroid[0] == pytest.approx(centres[2][0])
    assert set(np.unique(count.components)) == {0, 1, 2, 3, 4, 5}


def test_pieces_of_neighbouring_discs_stay_apart() -> None:
    labels, _ = draw_spine(n_discs=5, pitch=30, disc_height=8)  # a short segment: discs 22 rows apart
    assert len(count_levels(labels).discs) == 5


def test_disc_cut_by_the_cranial_edge_is_not_counted() -> None:
    labels, _ = draw_spine(n_discs=5)
    labels[0:6, 80:150] = SagittalLabel.DISC  # the lower part of a disc above the field of view
    count = count_levels(labels)
    assert count.names == ["L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1"]


def test_sacral_band_below_the_junction_is_not_counted() -> None:
    labels, centres = draw_spine(n_discs=5, below="sacrum")
    lowest_row = int(centres[-1][0])
    labels[lowest_row + 28 : lowest_row + 34, 100:130] = SagittalLabel.DISC  # S1/S2 remnant inside the sacrum
    count = count_levels(labels)
    assert count.names == ["L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1"]
    assert count.junction is not None and count.junction.centroid == pytest.approx(centres[-1])
    assert any("sacral segment" in w for w in count.warnings)
    assert count.components.max() == 5 and not count.components[lowest_row + 30, 115]


def test_rudimentary_junction_at_a_lumbar_distance_stays_l5s1() -> None:
    labels, centres = draw_spine(n_discs=5, lowest_length=20)
    count = count_levels(labels)
    assert len(count.discs) == 5 and count.junction is not None
    assert count.junction.centroid == pytest.approx(centres[-1])
    assert not any("sacral segment" in w for w in count.warnings)


def test_disc_with_no_room_for_its_vertebra_at_the_top_edge_is_not_counted() -> None:
    # the top disc centred 9.5 rows below the edge (a fifth of a segment): its vertebra above is out of view
    labels, centres = draw_spine(shape=(300, 256), n_discs=6, top=5, below="none")
    count = count_levels(labels)
    assert len(count.discs) == 5 and count.names[0] == "L1/L2"
    np.testing.assert_allclose([d.centroid for d in count.discs], centres[1:])
    assert not count.components[int(round(centres[0][0])), 115]
    assert cranial_partial(find_discs(labels, cranial_fraction=0.0)[0], (1.0, 1.0))
    # at more than half a segment below the edge it counts
    labels, _ = draw_spine(shape=(330, 256), n_discs=6, top=30, below="none")
    assert len(count_levels(labels).discs) == 6


def test_band_in_unlabelled_bone_below_the_junction_is_not_counted() -> None:
    # SPIDER-style: lumbar bodies labelled, the sacrum not; a disc-like band inside it
    labels, centres = draw_spine(shape=(340, 256), n_discs=5, below="none")
    lowest_row = int(centres[-1][0])
    band = slice(lowest_row + 30, lowest_row + 38)
    labels[band, 85:145] = SagittalLabel.DISC  # as long as a disc, a lumbar distance below: sacral_band misses it
    count = count_levels(labels)
    assert count.names == ["L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1"]
    assert count.junction is not None and count.junction.centroid == pytest.approx(centres[-1])
    assert any("sacral segment" in w for w in count.warnings)
    assert not count.components[band, 85:145].any()


def test_lowest_disc_with_its_body_labelled_stays_the_junction() -> None:
    labels, centres = draw_spine(n_discs=5, below="none")
    discs, _ = find_discs(labels)
    assert body_between(labels, discs[-2], discs[-1], (1.0, 1.0)) == pytest.approx(1.0)
    assert not sacral_bone(labels, discs, (1.0, 1.0))
    # without a canal reaching the lower spine (a lateral slice) unlabelled bone says nothing
    lateral = labels.copy()
    lateral[int(centres[-1][0]) - 48 - 5 : int(centres[-1][0]) - 5, 80:150] = 0
    lateral[150:, 160:180] = 0
    assert not sacral_bone(lateral, find_discs(lateral)[0], (1.0, 1.0))
    # with the canal running down and the L5 body unlabelled, the lowest disc reads as a sacral band
    unlabelled_l5 = labels.copy()
    unlabelled_l5[int(centres[-1][0]) - 48 - 5 : int(centres[-1][0]) - 5, 80:150] = 0
    assert sacral_bone(unlabelled_l5, discs, (1.0, 1.0))
