"""SIJ phantom: layout, DICOM validity, determinism, and ground truth recomputed from the files."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from inference.labels import SijLabel
from inference.phantoms.sij import SijFeatures, generate_sij_study, latent_logit, sij_ground_truth, study_has_stir
from inference.phantoms.sij_truth import (
    QUADRANT_KEYS,
    cranial_heights,
    select_sparcc_slices,
    slice_quadrants,
)
from tests.conftest import require_program

CONTRACT_KEYS = {
    "format_version",
    "kind",
    "seed",
    "generator_version",
    "study_instance_uid",
    "frame_of_reference_uid",
    "series",
    "research_use",
    "axspa",
    "axspa_probability_true",
    "sparcc_fm_score",
    "sparcc_slices",
    "fm_table",
    "fm_volume_ml",
    "oedema_table",
    "asas_positive_mri",
}


def _first_seed(with_stir: bool, start: int = 0) -> int:
    seed = start
    while study_has_stir(seed) != with_stir:
        seed += 1
    return seed


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One study with STIR and one without (seeds that carry FM and oedema)."""
    root = tmp_path_factory.mktemp("sij")
    with_stir = _first_seed(True, 14)
    without = _first_seed(False, 11)
    return {
        "stir": generate_sij_study(root / "a", with_stir),
        "nostir": generate_sij_study(root / "b", without),
    }


def _read_series(folder: Path) -> list[pydicom.Dataset]:
    datasets = [pydicom.dcmread(p) for p in sorted(folder.glob("IM*.dcm"))]
    return sorted(datasets, key=lambda ds: int(ds.InstanceNumber))


def _truth(study: Path) -> dict[str, Any]:
    return json.loads((study / "ground_truth.json").read_text(encoding="utf-8"))


def test_layout_and_contract_keys(studies: dict[str, Path]) -> None:
    for name, study in studies.items():
        truth = _truth(study)
        assert CONTRACT_KEYS <= set(truth)
        assert truth["format_version"] == 1 and truth["kind"] == "sij"
        expected = {"cor_t1", "cor_stir"} if name == "stir" else {"cor_t1"}
        assert set(truth["series"]) == expected
        assert {p.name for p in (study / "dicom").iterdir()} == expected
        assert (truth["oedema_table"] is None) == (name == "nostir")
        assert (truth["asas_positive_mri"] is None) == (name == "nostir")
        assert truth["axspa"] in (0, 1)
        assert 0.0 < truth["axspa_probability_true"] < 1.0
        for key, entry in truth["series"].items():
            assert entry["label_enum"] == "SijLabel"
            npz = np.load(study / entry["labels"])
            labels, uids = npz["labels"], npz["sop_instance_uids"]
            datasets = _read_series(study / "dicom" / key)
            assert labels.dtype == np.uint8
            assert labels.shape == (len(datasets), datasets[0].Rows, datasets[0].Columns)
            assert list(uids) == [ds.SOPInstanceUID for ds in datasets]
            assert {ds.SeriesInstanceUID for ds in datasets} == {entry["series_instance_uid"]}
            assert {ds.StudyInstanceUID for ds in datasets} == {truth["study_instance_uid"]}
            assert {ds.FrameOfReferenceUID for ds in datasets} == {truth["frame_of_reference_uid"]}
            assert datasets[0].SeriesDescription == entry["series_description"]
            assert set(np.unique(labels)) <= {int(v) for v in SijLabel}
            assert 12 <= len(datasets) <= 18
            assert 256 <= datasets[0].Columns <= 512
            assert 3.0 <= float(datasets[0].SliceThickness) <= 5.0


def test_t1_and_stir_share_geometry(studies: dict[str, Path]) -> None:
    study = studies["stir"]
    t1 = _read_series(study / "dicom" / "cor_t1")
    stir = _read_series(study / "dicom" / "cor_stir")
    assert len(t1) == len(stir)
    for a, b in zip(t1, stir):
        assert a.ImagePositionPatient == b.ImagePositionPatient
        assert a.ImageOrientationPatient == b.ImageOrientationPatient
        assert a.PixelSpacing == b.PixelSpacing
    assert "InversionTime" in stir[0] and "InversionTime" not in t1[0]


def test_semi_coronal_orientation(studies: dict[str, Path]) -> None:
    ds = _read_series(studies["stir"] / "dicom" / "cor_t1")[0]
    ori = np.array([float(x) for x in ds.ImageOrientationPatient])
    normal = np.cross(ori[:3], ori[3:])
    # Tilted from true coronal (normal along y) by 20-40 degrees, about the x axis.
    tilt = np.degrees(np.arccos(abs(normal[1])))
    assert 19.0 <= tilt <= 41.0
    assert abs(normal[0]) < 1e-6


def test_dciodvfy_passes(studies: dict[str, Path]) -> None:
    dciodvfy = require_program("dciodvfy")
    for study in studies.values():
        for folder in sorted((study / "dicom").iterdir()):
            path = sorted(folder.glob("IM*.dcm"))[0]
            result = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True, check=False)
            errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]
            assert errors == [], f"{path}: {errors}"


def _files(study: Path) -> dict[str, bytes]:
    return {str(p.relative_to(study)): p.read_bytes() for p in sorted(study.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_and_different_seeds_differ(studies: dict[str, Path], tmp_path: Path) -> None:
    study = studies["nostir"]
    seed = _truth(study)["seed"]
    again = generate_sij_study(tmp_path / "again", seed)
    assert _files(again) == _files(study)
    other = _files(studies["stir"])
    mine = _files(study)
    common = set(other) & set(mine)
    assert common and all(other[k] != mine[k] for k in common)


def _recompute(study: Path, key: str, lesion: int) -> tuple[list[str], list[dict[str, bool]], list[np.ndarray], float]:
    """Quadrant presence per slice from the files alone (labels + DICOM geometry)."""
    datasets = _read_series(study / "dicom" / key)
    npz = np.load(study / "labels" / f"{key}.npz")
    labels = npz["labels"]
    ori = np.array([float(x) for x in datasets[0].ImageOrientationPatient])
    spacing = (float(datasets[0].PixelSpacing[0]), float(datasets[0].PixelSpacing[1]))
    heights = cranial_heights(labels.shape[1:], spacing, ori)
    analyses = [slice_quadrants(plane, lesion, heights, spacing) for plane in labels]
    positions = np.array([[float(x) for x in ds.ImagePositionPatient] for ds in datasets])
    normal = np.cross(ori[:3], ori[3:])
    along = positions @ normal
    assert np.all(np.diff(along) > 0), "InstanceNumber order is spatial order"
    slice_spacing = float(np.mean(np.diff(along)))
    voxel = spacing[0] * spacing[1] * slice_spacing
    uids = [str(u) for u in npz["sop_instance_uids"]]
    return uids, [a.present() for a in analyses], [np.array([a.joint_area_mm2 for a in analyses])], voxel


def test_ground_truth_agrees_with_label_files(studies: dict[str, Path]) -> None:
    for study in studies.values():
        truth = _truth(study)
        uids, present, (area,), voxel = _recompute(study, "cor_t1", SijLabel.FAT_METAPLASIA)
        chosen = select_sparcc_slices(area)
        assert truth["sparcc_slices"] == [uids[i] for i in chosen]
        assert chosen == list(range(chosen[0], chosen[0] + 5))
        assert truth["fm_table"] == {uids[i]: present[i] for i in chosen}
        score = sum(sum(present[i].values()) for i in chosen)
        assert truth["sparcc_fm_score"] == score
        assert 0 <= score <= 40
        for row in truth["fm_table"].values():
            assert set(row) == set(QUADRANT_KEYS)
        # FM volume: all FM voxels x voxel volume (independent count; sides add up).
        labels = np.load(study / "labels" / "cor_t1.npz")["labels"]
        total = float((labels == SijLabel.FAT_METAPLASIA).sum()) * voxel / 1000.0
        vol = truth["fm_volume_ml"]
        assert vol["total"] == pytest.approx(total, abs=2e-3)
        assert vol["left"] + vol["right"] == pytest.approx(vol["total"], abs=2e-3)
        if truth["oedema_table"] is not None:
            # Keyed by the cor_t1 UIDs of the SPARCC slices, read on the STIR slice at the same position.
            _, s_present, _, _ = _recompute(study, "cor_stir", SijLabel.OEDEMA)
            assert truth["oedema_table"] == {uids[i]: s_present[i] for i in chosen}


def test_fm_is_bright_on_t1_and_oedema_bright_on_stir(studies: dict[str, Path]) -> None:
    study = studies["stir"]
    for key, lesion in (("cor_t1", SijLabel.FAT_METAPLASIA), ("cor_stir", SijLabel.OEDEMA)):
        image = np.stack([ds.pixel_array for ds in _read_series(study / "dicom" / key)]).astype(float)
        labels = np.load(study / "labels" / f"{key}.npz")["labels"]
        sacrum = image[labels == SijLabel.SACRUM].mean()
        assert (labels == lesion).sum() >= 20, f"fixture seed should carry {lesion.name}"
        assert image[labels == lesion].mean() > 1.2 * sacrum


def test_sparcc_slices_have_lesions_somewhere(studies: dict[str, Path]) -> None:
    # The fixture seeds are chosen to carry FM: the score must see it.
    scores = [_truth(s)["sparcc_fm_score"] for s in studies.values()]
    volumes = [_truth(s)["fm_volume_ml"]["total"] for s in studies.values()]
    for score, volume in zip(scores, volumes):
        assert (score > 0) <= (volume > 0)


def test_latent_model_is_monotone_in_the_lesion_burden() -> None:
    none = SijFeatures(fm_score=0, fm_quadrants=0, fm_volume_ml=0.0, oedema_quadrants=0)
    some = SijFeatures(fm_score=6, fm_quadrants=3, fm_volume_ml=1.0, oedema_quadrants=0)
    more = SijFeatures(fm_score=6, fm_quadrants=3, fm_volume_ml=1.0, oedema_quadrants=3)
    assert latent_logit(none) < latent_logit(some) < latent_logit(more)
    assert latent_logit(none) < -2.0  # a clean pelvis is rarely axSpA


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    pos, neg = scores[labels == 1], scores[labels == 0]
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


@pytest.mark.slow
def test_axspa_label_over_40_seeds_is_sensible_and_noisy() -> None:
    truths = [sij_ground_truth(seed) for seed in range(1000, 1040)]
    axspa = np.array([t["axspa"] for t in truths])
    scores = np.array([t["sparcc_fm_score"] for t in truths])
    latent = np.array([t["phantom"]["latent_logit_features"] for t in truths])
    assert 0.25 <= axspa.mean() <= 0.75
    # Both classes occur with overlapping FM scores: the score alone cannot separate them.
    assert scores[axspa == 0].max() > scores[axspa == 1].min()
    # Some FM in non-axSpA (degenerative / noise) and the oracle is good, not perfect.
    assert (scores[axspa == 0] > 0).any()
    assert 0.7 <= _auc(latent, axspa) < 1.0
    # Some studies lack STIR, most have it.
    no_stir = sum(t["oedema_table"] is None for t in truths)
    assert 2 <= no_stir <= 16


def test_left_ilium_is_on_the_patients_left(studies: dict[str, Path]) -> None:
    # Through the DICOM geometry: LPS x grows to the patient's left.
    study = studies["stir"]
    datasets = _read_series(study / "dicom" / "cor_t1")
    labels = np.load(study / "labels" / "cor_t1.npz")["labels"]
    k = len(datasets) // 2
    ds = datasets[k]
    ori = np.array([float(x) for x in ds.ImageOrientationPatient])
    ipp = np.array([float(x) for x in ds.ImagePositionPatient])
    row_spacing, col_spacing = (float(x) for x in ds.PixelSpacing)

    def mean_x(value: int) -> float:
        rows, cols = np.nonzero(labels[k] == value)
        assert rows.size, f"no {SijLabel(value).name} on the middle slice"
        points = ipp + np.outer(cols * col_spacing, ori[:3]) + np.outer(rows * row_spacing, ori[3:])
        return float(points[:, 0].mean())

    assert mean_x(SijLabel.ILIUM_RIGHT) < mean_x(SijLabel.SACRUM) < mean_x(SijLabel.ILIUM_LEFT)


def test_negative_seed_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        generate_sij_study(tmp_path / "x", -1)
    assert not (tmp_path / "x").exists()
