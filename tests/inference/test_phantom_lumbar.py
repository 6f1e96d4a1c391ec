"""Lumbar phantom studies: contract layout, DICOM validity, determinism, ground truth, geometry, contrast."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from inference.labels import AxialLabel, SagittalLabel
from inference.phantoms.lumbar import (
    LUMBAR_LEVELS,
    ROLES,
    axial_label_stacks,
    build_lumbar_scene,
    generate_lumbar_study,
)
from inference.phantoms.lumbar_anatomy import DiscShape, frame_from_tilt
from inference.phantoms.lumbar_herniation import AXIAL_LEVELS, plan_herniation
from inference.phantoms.msu_truth import read_msu_stack
from tests.conftest import require_program

SEED = 3


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_lumbar_study(tmp_path_factory.mktemp("lumbar") / "study", SEED)


@pytest.fixture(scope="module")
def truth(study: Path) -> dict[str, Any]:
    return json.loads((study / "ground_truth.json").read_text(encoding="utf-8"))


def _files(study: Path, key: str) -> list[Path]:
    return sorted((study / "dicom" / key).glob("IM*.dcm"))


def test_layout_follows_the_contract(study: Path, truth: dict[str, Any]) -> None:
    assert truth["format_version"] == 1 and truth["kind"] == "lumbar" and truth["seed"] == SEED
    assert set(truth["series"]) == set(ROLES)
    for key, entry in truth["series"].items():
        files = _files(study, key)
        assert files, key
        with np.load(study / entry["labels"]) as npz:
            labels, uids = npz["labels"], [str(u) for u in npz["sop_instance_uids"]]
        assert labels.dtype == np.uint8 and labels.shape[0] == len(files)
        datasets = [pydicom.dcmread(f) for f in files]
        assert uids == [str(ds.SOPInstanceUID) for ds in datasets]
        assert [int(ds.InstanceNumber) for ds in datasets] == list(range(1, len(files) + 1))
        assert labels.shape[1:] == (int(datasets[0].Rows), int(datasets[0].Columns))
        assert entry["label_enum"] == ("AxialLabel" if key == "ax_t2" else "SagittalLabel")
        assert {str(ds.SeriesInstanceUID) for ds in datasets} == {entry["series_instance_uid"]}
        enum = AxialLabel if key == "ax_t2" else SagittalLabel
        assert set(np.unique(labels)) <= {int(v) for v in enum}
    assert [d["level"] for d in truth["discs"]] == list(LUMBAR_LEVELS)
    stacked = [d for d in truth["discs"] if d["axial_stack"] is not None]
    assert sorted(d["level"] for d in stacked) == sorted(AXIAL_LEVELS)
    for disc in truth["discs"]:
        assert disc["msu_size"] in (0, 1, 2, 3)
        assert np.isclose(np.linalg.norm(disc["normal_lps"]), 1.0, atol=1e-4)
        if disc["msu_size"] == 0:
            assert disc["zone"] is None and disc["side"] is None
        else:
            assert disc["zone"] in ("A", "AB", "B", "C")
            assert disc["side"] == "central" if disc["zone"] == "A" else disc["side"] in ("left", "right")


@pytest.mark.integration
def test_every_series_passes_dciodvfy(study: Path) -> None:
    dciodvfy = require_program("dciodvfy")
    for key in ROLES:
        path = _files(study, key)[0]
        result = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True, check=False)
        errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]
        assert not errors, f"{key}: {errors}"


def test_same_seed_same_bytes(study: Path, tmp_path: Path) -> None:
    again = generate_lumbar_study(tmp_path / "again", SEED)
    first = sorted(p.relative_to(study) for p in study.rglob("*") if p.is_file())
    second = sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert first == second
    for rel in first:
        assert (study / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_saved_axial_labels_are_those_the_scene_checked(study: Path, truth: dict[str, Any]) -> None:
    """The generator reuses the labels of the scene's last redraw check: they must be a fresh sampling's."""
    scene = build_lumbar_scene(SEED)
    assert scene.axial_labels is not None
    fresh = axial_label_stacks(scene)
    assert len(scene.axial_labels) == len(fresh)
    for kept, (labels, _) in zip(scene.axial_labels, fresh.values()):
        np.testing.assert_array_equal(kept, labels)
    with np.load(study / truth["series"]["ax_t2"]["labels"]) as npz:
        np.testing.assert_array_equal(npz["labels"], np.concatenate(scene.axial_labels))


def test_different_seeds_differ() -> None:
    a = build_lumbar_scene(SEED, roles=("ax_t2",))
    b = build_lumbar_scene(SEED + 1, roles=("ax_t2",))
    assert a.study.study_instance_uid != b.study.study_instance_uid
    assert a.spine.discs["L4/L5"].height != b.spine.discs["L4/L5"].height
    assert not np.allclose(a.spine.discs["L5/S1"].frame.origin, b.spine.discs["L5/S1"].frame.origin)


def test_ground_truth_is_the_rule_applied_to_the_saved_labels(study: Path, truth: dict[str, Any]) -> None:
    entry = truth["series"]["ax_t2"]
    with np.load(study / entry["labels"]) as npz:
        labels, uids = npz["labels"], [str(u) for u in npz["sop_instance_uids"]]
    spacing = tuple(float(v) for v in pydicom.dcmread(_files(study, "ax_t2")[0]).PixelSpacing)
    stacks = {s["level"]: s for s in entry["stacks"]}
    for disc in truth["discs"]:
        if disc["axial_stack"] is None:
            continue
        stack = stacks[disc["level"]]
        first, n = stack["first_index"], stack["n_slices"]
        index, reading = read_msu_stack(labels[first:first + n], spacing)
        assert reading.size == disc["msu_size"], disc["level"]
        assert reading.zone == disc["zone"]
        assert (reading.side or ("central" if reading.zone == "A" else None)) == disc["side"]
        assert disc["intended"]["label"] == reading.label
        if reading.size:
            assert disc["max_slice_sop_instance_uid"] == uids[first + index]
            assert disc["ratio"] == pytest.approx(reading.ratio, abs=1e-3)


def test_axial_stacks_are_parallel_to_their_discs_and_share_the_frame(study: Path, truth: dict[str, Any]) -> None:
    datasets = {key: [pydicom.dcmread(f, stop_before_pixels=True) for f in _files(study, key)] for key in ROLES}
    all_ds = [ds for dss in datasets.values() for ds in dss]
    assert {str(ds.FrameOfReferenceUID) for ds in all_ds} == {truth["frame_of_reference_uid"]}
    assert {str(ds.StudyInstanceUID) for ds in all_ds} == {truth["study_instance_uid"]}
    by_orientation: dict[tuple[float, ...], list[Any]] = {}
    for ds in datasets["ax_t2"]:
        by_orientation.setdefault(tuple(round(float(v), 4) for v in ds.ImageOrientationPatient), []).append(ds)
    assert len(by_orientation) == 3
    normals = {d["level"]: np.array(d["normal_lps"]) for d in truth["discs"]}
    stacks = truth["series"]["ax_t2"]["stacks"]
    tilts = []
    for stack in stacks:
        ds = datasets["ax_t2"][stack["first_index"]]
        iop = np.array([float(v) for v in ds.ImageOrientationPatient])
        normal = np.cross(iop[:3], iop[3:])
        angle = np.degrees(np.arccos(abs(float(normal @ normals[stack["level"]]))))
        assert angle <= 3.6, stack["level"]
        tilts.append(np.degrees(np.arccos(abs(normal[2]))))
        # the stack's slices are parallel and evenly spaced along its normal
        positions = np.array([[float(v) for v in d.ImagePositionPatient]
                              for d in datasets["ax_t2"][stack["first_index"]:stack["first_index"] + stack["n_slices"]]])
        steps = np.diff(positions @ normal)
        assert np.allclose(np.abs(steps), abs(steps[0]), atol=1e-3) and abs(steps[0]) > 2.0
    assert max(tilts) > 10.0  # at least L5/S1 is clearly oblique


def _mean(image: np.ndarray, mask: np.ndarray) -> float:
    assert mask.sum() > 20
    return float(image[mask].mean())


def test_labels_align_with_image_contrast(study: Path, truth: dict[str, Any]) -> None:
    def load(key: str) -> tuple[np.ndarray, np.ndarray]:
        pixels = np.stack([pydicom.dcmread(f).pixel_array for f in _files(study, key)]).astype(float)
        with np.load(study / truth["series"][key]["labels"]) as npz:
            return pixels, npz["labels"]

    ax, ax_labels = load("ax_t2")
    sac = _mean(ax, ax_labels == AxialLabel.DURAL_SAC)
    assert sac > 1.5 * _mean(ax, ax_labels == AxialLabel.VERTEBRA)
    assert sac > 1.2 * _mean(ax, ax_labels == AxialLabel.DISC)
    assert sac > 1.5 * _mean(ax, np.isin(ax_labels, [AxialLabel.FACET_LEFT, AxialLabel.FACET_RIGHT]))
    t2, t2_labels = load("sag_t2")
    t1, t1_labels = load("sag_t1")
    # CSF bright on T2, dark on T1 (relative to marrow; the canal label also holds epidural fat)
    ratio_t2 = _mean(t2, t2_labels == SagittalLabel.CANAL) / _mean(t2, t2_labels == SagittalLabel.VERTEBRA)
    ratio_t1 = _mean(t1, t1_labels == SagittalLabel.CANAL) / _mean(t1, t1_labels == SagittalLabel.VERTEBRA)
    assert ratio_t2 > 1.3
    assert ratio_t1 < 0.7 * ratio_t2
    # the sagittal field of view reaches the air behind the back: dark, with Rician noise only
    for image in (t1, t2):
        assert np.percentile(image, 2) < 0.1 * np.percentile(image, 99)


def test_forced_classes_read_back_from_the_masks() -> None:
    # every size with every zone it is drawn in, both sides, and normal discs
    combos = [(s, z, side) for s in (1, 2, 3) for z in ("A", "AB", "B", "C") if not (z == "C" and s == 3)
              for side in ((None,) if z == "A" else ("left", "right"))]
    combos.append((0, None, None))
    for start in range(0, len(combos), 3):
        chunk = combos[start:start + 3]
        forced = dict(zip(AXIAL_LEVELS, chunk))
        scene = build_lumbar_scene(100 + start, herniations=forced, roles=("ax_t2",))
        stacks = axial_label_stacks(scene)
        for level, (size, zone, side) in forced.items():
            labels, spacing = stacks[level]
            _, reading = read_msu_stack(labels, spacing)
            assert (reading.size, reading.zone, reading.side) == (size, zone, side), (level, reading)


def test_drawn_classes_cover_every_size_zone_and_side() -> None:
    disc = DiscShape(
        name="L4/L5", lower="L5", upper="L4", frame=frame_from_tilt(np.zeros(3), 10.0), height=10.0,
        half_width=24.0, anterior_depth=18.0, posterior_depth=15.0, nucleus_scale=0.55, degeneration=0.3,
        disc_to_line=14.0, facet_half_span=12.0, facet_angle_deg=55.0, facet_length=9.0,
        facet_thickness=5.0, facet_asymmetry=0.0,
    )
    seen = Counter()
    for seed in range(400):
        plan = plan_herniation(np.random.default_rng(seed), disc)
        seen[(plan.size, plan.zone, plan.side)] += 1
    sizes = {k[0] for k in seen}
    assert sizes == {0, 1, 2, 3}
    for zone in ("AB", "B", "C"):
        for side in ("left", "right"):
            assert any(k[1] == zone and k[2] == side for k in seen), (zone, side)
    assert any(k[1] == "A" for k in seen)
    assert 0.15 < seen[(0, None, None)] / 400 < 0.45


def test_reader_finds_one_volume_per_stack_with_the_label_geometry(study: Path, truth: dict[str, Any]) -> None:
    volume_module = pytest.importorskip("inference.volume")
    normals = {d["level"]: np.array(d["normal_lps"]) for d in truth["discs"]}
    centres = {d["level"]: np.array(d["center_lps"]) for d in truth["discs"]}
    for key, n_stacks in (("sag_t2", 1), ("sag_t1", 1), ("ax_t2", 3)):
        volumes = volume_module.load_volumes(study / "dicom" / key)
        assert len(volumes) == n_stacks, key
        with np.load(study / truth["series"][key]["labels"]) as npz:
            uids = [str(u) for u in npz["sop_instance_uids"]]
        assert sorted(u for v in volumes for u in v.sop_instance_uids) == sorted(uids)
        if key != "ax_t2":
            continue
        for volume in volumes:
            # the stack's level: the disc whose centre lies closest to the stack's planes
            origin = volume.voxel_to_patient([0, 0, 0])
            level = min(AXIAL_LEVELS, key=lambda lv: abs(float((centres[lv] - origin) @ volume.normal)))
            angle = np.degrees(np.arccos(min(1.0, abs(float(volume.normal @ normals[level])))))
            assert angle <= 3.6, level
            # one slice lies on the disc's mid-plane (within the plan's 0.6 mm)
            distances = [
                float((centres[level] - volume.voxel_to_patient([k, 0, 0])) @ volume.normal)
                for k in range(volume.shape[0])
            ]
            assert min(abs(d) for d in distances) < 0.7


@pytest.mark.slow
def test_drawn_class_equals_the_class_read_from_the_masks_over_many_seeds() -> None:
    seen = Counter()
    for seed in range(500, 560):
        scene = build_lumbar_scene(seed, roles=("ax_t2",))
        for level, (labels, spacing) in axial_label_stacks(scene).items():
            plan = scene.herniations[level]
            _, reading = read_msu_stack(labels, spacing)
            assert reading.label == plan.intended()["label"], (seed, level)
            assert reading.side == plan.side, (seed, level)
            seen[reading.label] += 1
    assert {label.split("-")[0] for label in seen} == {"0", "1", "2", "3"}
