"""The pipeline on hand-made stacks with a stub network standing in for the real one."""

from __future__ import annotations

import numpy as np
import pytest

from inference.labels import AxialLabel as L
from inference.ldh.errors import LdhInputError
from inference.ldh.inferer import LdhInferer
from inference.ldh.pipeline import LdhPipeline

from tests.inference.ldh.conftest import IntensityStub, labelled_slice, make_stack


def study(mirrored: bool = False) -> tuple[list, list[np.ndarray]]:
    """Three stacks of three slices: L3/L4 normal, L4/L5 2-B left, L5/S1 1-A."""
    l34 = np.stack([labelled_slice()] * 3)
    l45 = np.stack([labelled_slice(4, (65, 71)), labelled_slice(12, (65, 71)), labelled_slice()])
    l51 = np.stack([labelled_slice(), labelled_slice(5, (46, 52)), labelled_slice(3, (46, 52))])
    stacks = [
        make_stack(l45, 40.0, mirrored=mirrored, name="l45"),
        make_stack(l51, 0.0, mirrored=mirrored, name="l51"),
        make_stack(l34, 80.0, mirrored=mirrored, name="l34"),
    ]
    return stacks, [l45, l51, l34]


@pytest.mark.parametrize("tta", [False, True], ids=["plain", "flip-tta"])
@pytest.mark.parametrize("mirrored", [False, True])
def test_pipeline_grades_each_level(stub: IntensityStub, mirrored: bool, tta: bool) -> None:
    # with flip TTA the stub's facet channels tie (it cannot tell sides): post-processing names them
    stacks, truth = study(mirrored)
    pipe = LdhPipeline(stub, inferer=LdhInferer(roi_size=(96, 96), flip_tta=tta), use_level_finder=False)
    result = pipe(stacks)
    assert [f.level for f in result.findings] == ["L3/L4", "L4/L5", "L5/S1"]
    l34, l45, l51 = result.findings
    assert (l34.size, l34.zone) == (0, None)
    assert (l45.size, l45.zone, l45.side) == (2, "B", "left")
    assert l45.depth_mm == pytest.approx(12.0) and l45.ratio == pytest.approx(12 / 16)
    assert l45.slice is not None and l45.slice.sop_instance_uid == "l45.1"
    assert (l51.size, l51.zone, l51.side) == (1, "A", "central")
    assert l51.slice is not None and l51.slice.sop_instance_uid == "l51.1"
    assert all(f.level_inferred and f.level_method == "stack_order" for f in result.findings)
    assert any("inferred" in w for w in l45.warnings)
    assert l45.confidence > 0.9
    assert l45.area_mm2 == pytest.approx(12 * 7)
    assert l45.volume_mm3 == pytest.approx((4 + 12) * 7 * 4.0)
    assert "L4/L5 (inferred): MSU 2-B left (depth 12.0 mm, 75 %)" in result.summary
    # the masks come back on the native grid, slice by slice
    for seg, lab in zip(result.segmentations, truth):
        expected = lab[..., ::-1] if mirrored else lab
        np.testing.assert_array_equal(seg.labels, expected)
        assert len(seg.slices) == lab.shape[0]
        assert seg.levels[0] in ("L3/L4", "L4/L5", "L5/S1")


def test_bbox_and_points_are_native_pixels(stub: IntensityStub) -> None:
    stacks, _ = study(mirrored=True)
    f = LdhPipeline(stub, inferer=LdhInferer(roi_size=(96, 96)), use_level_finder=False)(stacks).finding("L4/L5")
    assert f is not None and f.bbox == (50, 28, 61, 34)  # mirrored columns 65-71 -> 28-34
    assert f.apex_px is not None and f.apex_px[1] == pytest.approx(31.0)
    right, left = f.intrafacet_line_px  # type: ignore[misc]
    assert right[1] == pytest.approx(75.0) and left[1] == pytest.approx(24.0)


def test_facet_sides_come_from_orientation_not_the_network(stub: IntensityStub) -> None:
    # the network swaps the facet labels; post-processing names them by position
    lab = np.stack([labelled_slice(12, (65, 71))] * 2)
    swapped = lab.copy()
    swapped[lab == L.FACET_LEFT] = L.FACET_RIGHT
    swapped[lab == L.FACET_RIGHT] = L.FACET_LEFT
    result = LdhPipeline(stub, inferer=LdhInferer(roi_size=(96, 96)), use_level_finder=False)([make_stack(swapped, 0.0)])
    assert result.findings[0].side == "left"


def test_no_axial_stack_is_an_input_error(stub: IntensityStub) -> None:
    with pytest.raises(LdhInputError):
        LdhPipeline(stub)([])


def test_level_finder_without_sagittal_falls_back_to_stack_order(stub: IntensityStub) -> None:
    pytest.importorskip("inference.levels")
    stacks, _ = study()
    result = LdhPipeline(stub, inferer=LdhInferer(roi_size=(96, 96)))(stacks, None)
    assert [f.level for f in result.findings] == ["L3/L4", "L4/L5", "L5/S1"]
    assert all(f.level_inferred for f in result.findings)


def test_clean_labels_drops_specks_keeps_real_herniation() -> None:
    from inference.ldh.postprocess import clean_labels

    lab = labelled_slice(6, (46, 52))
    lab[90, 90] = L.HERNIATION  # a speck far from the disc: noise
    lab[49, 31] = L.HERNIATION  # a speck inside the disc's edge: disc
    lab[5:8, 5:8] = L.DISC  # a second disc blob: not the disc
    lab[85:88, 40:43] = L.HERNIATION  # 9 mm2, 35 mm behind the disc: stray
    lab[80:86, 60:66] = L.HERNIATION  # 36 mm2 away from the disc: a migrated fragment, kept
    out = clean_labels(lab, (1.0, 1.0), (0.0, 1.0))
    assert out[90, 90] == L.BACKGROUND and out[49, 31] == L.DISC and out[6, 6] == L.BACKGROUND
    assert out[86, 41] == L.BACKGROUND and out[82, 62] == L.HERNIATION
    assert (out == L.HERNIATION).sum() == 6 * 7 + 36


def test_herniation_continuing_over_adjacent_slices_is_kept() -> None:
    """Material above the disc's slab (no disc near it on that slice) is herniation when it
    continues the herniation of the next slice; a stray of the same size that does not is noise."""
    import numpy as np

    from inference.ldh.postprocess import clean_labels, link_herniation_across_slices

    middle = labelled_slice(6, (46, 52))  # herniation rows 50-55 behind the disc
    edge = labelled_slice(0, (46, 52))
    edge[edge == L.DISC] = L.BACKGROUND
    edge[5:8, 5:8] = L.DISC  # a sliver of disc at the slice's edge, far from the material
    edge[51:54, 47:51] = L.HERNIATION  # 12 mm2 over the middle slice's herniation
    edge[85:88, 40:43] = L.HERNIATION  # 9 mm2 stray: overlaps nothing
    edge[60, 20] = L.HERNIATION  # a speck
    far = edge.copy()
    far[51:54, 47:51] = L.BACKGROUND
    far[70:73, 47:51] = L.HERNIATION  # continues nothing on its neighbour
    raw = np.stack([edge, middle, far, edge])
    cleaned = np.stack([clean_labels(r, (1.0, 1.0), (0.0, 1.0)) for r in raw])
    assert not (cleaned[0] == L.HERNIATION).any()  # per slice: stray, dropped
    out = link_herniation_across_slices(raw, cleaned, (1.0, 1.0))
    assert (out[0, 51:54, 47:51] == L.HERNIATION).all()  # continues slice 1
    assert (out[1] == cleaned[1]).all() and (out[2] == cleaned[2]).all()
    assert not (out[3] == L.HERNIATION).any()  # its neighbour (slice 2) has no herniation there
    assert out[0, 86, 41] == L.BACKGROUND and out[0, 60, 20] == L.BACKGROUND
    assert (out[0] == L.HERNIATION).sum() == 12
    # restored through a chain of slices: slice 2 continues slice 1 once slice 1 is restored
    chain = np.stack([middle, edge, edge])
    out = link_herniation_across_slices(chain, np.stack([clean_labels(r, (1.0, 1.0), (0.0, 1.0)) for r in chain]), (1.0, 1.0))
    assert (out[2, 51:54, 47:51] == L.HERNIATION).all()


def test_linking_with_a_stray_before_the_continuing_piece() -> None:
    """Two dropped pieces on one slice, the stray first in raster order (once raised ValueError)."""
    import numpy as np

    from inference.ldh.postprocess import link_herniation_across_slices

    raw = np.zeros((2, 20, 20), np.uint8)
    raw[1, 2:5, 2:5] = L.HERNIATION  # overlaps nothing on slice 0
    raw[1, 12:15, 12:15] = L.HERNIATION  # continues slice 0
    raw[0, 12:15, 12:15] = L.HERNIATION
    cleaned = np.where(np.arange(2)[:, None, None] == 0, raw, 0).astype(np.uint8)
    out = link_herniation_across_slices(raw, cleaned, (1.0, 1.0))
    assert (out[1, 12:15, 12:15] == L.HERNIATION).all() and not out[1, 2:5, 2:5].any()


def test_level_network_is_loaded_once_per_pipeline(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """evaluate, benchmarks and infer run one pipeline over many studies: the level network loads once."""
    lumbar = pytest.importorskip("inference.phantoms.lumbar")
    import inference.levels as levels_pkg
    from inference.ldh.data import load_study

    loads: list[int] = []
    real = levels_pkg.load_levels_model

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        loads.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(levels_pkg, "load_levels_model", counting)
    lumbar.generate_lumbar_study(tmp_path / "study", 10007)
    study = load_study(tmp_path / "study")
    pipe = LdhPipeline.from_weights(device="cpu")
    first = pipe(study.axial, study.sagittal)
    second = pipe(study.axial, study.sagittal)
    assert len(loads) == 1 and pipe.levels_model is not None
    assert [f.level for f in first.findings] == [f.level for f in second.findings]
    assert all(f.level_method == "sagittal" for f in first.findings)



def test_a_level_network_that_cannot_load_falls_back_to_the_stack_order(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Loading the level network once per pipeline must keep the fallback of a broken weights file."""
    lumbar = pytest.importorskip("inference.phantoms.lumbar")
    import inference.levels as levels_pkg
    from inference.ldh.data import load_study

    tries: list[int] = []

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        tries.append(1)
        raise levels_pkg.LevelsModelError("cannot load the disc-level weights: checksum")

    monkeypatch.setattr(levels_pkg, "load_levels_model", broken)
    lumbar.generate_lumbar_study(tmp_path / "study", 10007)
    study = load_study(tmp_path / "study")
    pipe = LdhPipeline.from_weights(device="cpu")
    first = pipe(study.axial, study.sagittal)
    pipe(study.axial, study.sagittal)
    assert pipe.levels_model is None and first.findings
    assert all(f.level_method == "stack_order" for f in first.findings)
    assert len(tries) == 3  # the pipeline once, then slice_levels once per study (it says why it fell back)

def test_herniation_threshold_claims_faint_tips_from_the_argmax(stub: IntensityStub) -> None:
    probs = np.zeros((len(L), 4, 4), np.float32)
    probs[L.DISC] = 0.6
    probs[L.HERNIATION, :, 2:] = 0.35  # a faint tip: the disc wins the argmax
    probs[L.BACKGROUND] = 1 - probs[L.DISC] - probs[L.HERNIATION]
    plain = LdhPipeline(stub)
    assert not (plain._argmax(probs) == L.HERNIATION).any()
    lowered = LdhPipeline(stub, herniation_threshold=0.3)
    got = lowered._argmax(probs)
    assert (got[:, 2:] == L.HERNIATION).all() and (got[:, :2] == L.DISC).all()
