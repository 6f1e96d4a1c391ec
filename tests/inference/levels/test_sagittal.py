"""Sagittal series to named discs in patient space, with a stub network standing in for the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inference.labels import SagittalLabel
from inference.levels import assign_levels, find_disc_levels
from inference.levels.orientation import canonical_view
from inference.levels.sagittal import candidate_slices
from tests.inference.levels.shapes import FakeVolume, StubNetwork, axial_stack, draw_spine

N_SLICES = 9
SLICE_MM = 3.0


def canonical_sagittal(frame: str | None = "1.2.3") -> FakeVolume:
    """320 x 256 slices of 1 mm: rows go caudal (-z), columns go posterior (+y)."""
    affine = np.eye(4)
    affine[:3, 0] = (-SLICE_MM, 0.0, 0.0)
    affine[:3, 1] = (0.0, 0.0, -1.0)
    affine[:3, 2] = (0.0, 1.0, 0.0)
    affine[:3, 3] = (12.0, -128.0, 160.0)
    return FakeVolume(np.zeros((N_SLICES, 320, 256), np.float32), affine, frame)


def flipped_sagittal() -> FakeVolume:
    """The same grid stored transposed with both axes reversed (columns run cranial, rows anterior)."""
    base = canonical_sagittal()
    affine = base.affine.copy()
    affine[:3, 1] = -base.affine[:3, 2]  # rows: anterior
    affine[:3, 2] = -base.affine[:3, 1]  # columns: cranial
    # voxel (k, 0, 0) is the canonical (k, 319, 255)
    affine[:3, 3] = base.affine[:3, 3] + 319 * base.affine[:3, 1] + 255 * base.affine[:3, 2]
    return FakeVolume(np.zeros((N_SLICES, 256, 320), np.float32), affine, base.frame_of_reference_uid)


def expected_centres(volume: FakeVolume, centres: list[tuple[float, float]]) -> np.ndarray:
    base = canonical_sagittal()
    k = (N_SLICES - 1) // 2
    return np.array([base.affine[:3, :3] @ (k, r, c) + base.affine[:3, 3] for r, c in centres])


@pytest.fixture
def spine() -> tuple[StubNetwork, list[tuple[float, float]]]:
    labels, centres = draw_spine(n_discs=5, below="none")
    return StubNetwork(labels), centres


def test_candidate_slices_are_central() -> None:
    assert candidate_slices(9) == [3, 4, 5]
    assert candidate_slices(1) == [0]
    assert candidate_slices(30) == [11, 12, 13, 14, 15, 16, 17]
    assert candidate_slices(0) == []


def test_canonical_view_of_a_flipped_grid_round_trips() -> None:
    vol = flipped_sagittal()
    view = canonical_view(vol.affine, vol.array.shape[1:])
    assert view.transpose and view.flip_rows and view.flip_cols
    assert view.canonical_shape == (320, 256)
    source = np.arange(256 * 320).reshape(256, 320)
    canon = view.apply(source)
    points = np.array([[0.0, 0.0], [10.0, 200.0], [319.0, 255.0]])
    back = view.to_source(points).astype(int)
    assert [canon[int(r), int(c)] for r, c in points] == [source[i, j] for i, j in back]


@pytest.mark.parametrize("make", [canonical_sagittal, flipped_sagittal])
def test_find_disc_levels_maps_discs_to_patient_space(make, spine) -> None:  # type: ignore[no-untyped-def]
    network, centres = spine
    volume = make()
    discs, warnings = find_disc_levels(volume, network)
    assert [d.name for d in discs] == ["L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1"]
    np.testing.assert_allclose([d.center for d in discs], expected_centres(volume, centres), atol=0.6)
    for d in discs:
        np.testing.assert_allclose(d.normal, (0.0, 0.0, 1.0), atol=1e-6)  # flat discs, cranial
        assert 0.9 < d.confidence <= 1.0
    assert warnings == []


def test_assign_levels_through_the_sagittal_series(spine) -> None:  # type: ignore[no-untyped-def]
    network, _ = spine
    sagittal = canonical_sagittal()
    discs, _ = find_disc_levels(sagittal, network)
    by_name = {d.name: d for d in discs}
    stacks = [axial_stack(tuple(by_name[n].center), n_slices=5, slice_mm=3.0) for n in ("L5/S1", "L4/L5")]
    missing = axial_stack(tuple((by_name["L3/L4"].center + by_name["L4/L5"].center) / 2), n_slices=3, slice_mm=2.0)
    levels = assign_levels([*stacks, missing], sagittal, model=network)
    assert [lv.level for lv in levels[0]] == ["L5/S1"] * 5
    assert [lv.level for lv in levels[1]] == ["L4/L5"] * 5
    assert all(lv.method == "sagittal" for lv in levels[0] + levels[1])
    np.testing.assert_allclose([lv.distance_mm for lv in levels[0]], [-6, -3, 0, 3, 6], atol=0.6)
    assert [lv.level for lv in levels[2]] == [None] * 3  # halfway between discs: misses every disc
    assert all(any("no disc within" in w for w in lv.warnings) for lv in levels[2])


def test_mismatched_frame_of_reference(spine) -> None:  # type: ignore[no-untyped-def]
    network, _ = spine
    sagittal = canonical_sagittal(frame="1.2.3")
    discs, _ = find_disc_levels(sagittal, network)
    same_place = axial_stack(tuple(discs[-1].center), frame="9.9.9")
    elsewhere = axial_stack((500.0, 500.0, 900.0), frame="9.9.9")
    levels = assign_levels([same_place, elsewhere], sagittal, model=network)
    agree = levels[0]
    assert all(lv.level == "L5/S1" and lv.method == "sagittal" for lv in agree)
    assert all(any("frame of reference differs" in w for w in lv.warnings) for lv in agree)
    reference = assign_levels([axial_stack(tuple(discs[-1].center))], sagittal, model=network)[0]
    assert agree[2].confidence < reference[2].confidence
    disagree = levels[1]
    assert all(lv.method == "stack_order" for lv in disagree)
    assert all(lv.warnings[0].startswith("inferred") for lv in disagree)
    assert all(any("frame of reference differs" in w for w in lv.warnings) for lv in disagree)


def test_sagittal_without_discs_falls_back_to_stack_order() -> None:
    network = StubNetwork(np.zeros((320, 256), np.int64))
    stacks = [axial_stack((0, 0, z)) for z in (30.0, -5.0)]
    levels = assign_levels(stacks, canonical_sagittal(), model=network)
    assert [lv[0].level for lv in levels] == ["L4/L5", "L5/S1"]
    assert all(lv.method == "stack_order" and "only 0 disc" in lv.warnings[0] for lv in levels[0])


def test_network_errors_fall_back_to_stack_order() -> None:
    class Broken(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("out of memory")

    levels = assign_levels([axial_stack((0, 0, 0))], canonical_sagittal(), model=Broken())
    assert levels[0][0].method == "stack_order"
    assert "out of memory" in levels[0][0].warnings[0]


class PerSliceStub(torch.nn.Module):
    """Returns the n-th canvas label map for the n-th slice of the batch."""

    def __init__(self, maps: list[np.ndarray]) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        onehot = [np.eye(len(SagittalLabel), dtype=np.float32)[m].transpose(2, 0, 1) * 20.0 for m in maps]
        self.register_buffer("logits", torch.as_tensor(np.stack(onehot)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[: x.shape[0]] + 0 * self.dummy


def test_mid_sagittal_slice_missing_the_junction_its_neighbours_see_is_flagged() -> None:
    full, _ = draw_spine(n_discs=5, below="none")
    short, _ = draw_spine(n_discs=4, below="none")  # L5/S1 lost on the mid-sagittal slice
    short[:, 155:185] = SagittalLabel.CANAL  # ... which shows the widest canal
    discs, warnings = find_disc_levels(canonical_sagittal(), PerSliceStub([full, short, full]))
    assert len(discs) == 4
    assert any("neighbouring sagittal slices" in w and "above" in w for w in warnings)
    agreeing, quiet = find_disc_levels(canonical_sagittal(), PerSliceStub([full, full, full]))
    assert not any("neighbouring" in w for w in quiet)
    assert max(d.confidence for d in discs) < min(d.confidence for d in agreeing)
