"""Phantom studies and result objects read from their reference labels (no network needed).

The lumbar result comes from :meth:`LdhPipeline.grade` on the phantom's label masks, the
SIJ result from :func:`inference.sij.pipeline.analyse` on its label slices, so the encoders
see real multi-stack geometry and realistic findings in a few seconds.
"""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from pydicom.dataset import Dataset

from inference.labels import SijLabel
from inference.ldh.pipeline import LdhPipeline, make_segmentation
from inference.ldh.result import LdhResult
from inference.sij.pipeline import analyse
from inference.sij.result import ModelInfo, SijResult
from inference.volume import Volume, load_volumes

SHA = "0123456789abcdef" * 4
LUMBAR_SEED = 1
SIJ_SEED = 4


@dataclass
class LumbarCase:
    folder: Path
    axial: list[Volume]
    result: LdhResult


@dataclass
class SijCase:
    folder: Path
    t1: Volume
    result: SijResult


def _labels_by_uid(npz: Path) -> dict[str, np.ndarray]:
    data = np.load(npz)
    return {str(u): lab for u, lab in zip(data["sop_instance_uids"], data["labels"])}


def lumbar_result(folder: Path, *, version: str = "1.0", sha: str | None = SHA) -> tuple[list[Volume], LdhResult]:
    """Grade the phantom's reference labelling (levels from stack order)."""
    axial = load_volumes(folder / "dicom" / "ax_t2")
    by_uid = _labels_by_uid(folder / "labels" / "ax_t2.npz")
    segs = [make_segmentation(i, v, np.stack([by_uid[u] for u in v.sop_instance_uids])) for i, v in enumerate(axial)]
    pipe = LdhPipeline(torch.nn.Identity(), use_level_finder=False)
    findings, warnings = pipe.grade(axial, segs, None)
    result = LdhResult(findings=findings, segmentations=segs, model_name="ldh-demo", model_version=version,
                       model_sha256=sha, notice="research use only; trained on synthetic data", warnings=warnings)
    return axial, result


def sij_result(folder: Path, *, with_stir: bool = True, version: str = "1.0") -> tuple[Volume, SijResult]:
    """Score the phantom's reference label slices."""
    (t1,) = load_volumes(folder / "dicom" / "cor_t1")
    t1_labels = _labels_by_uid(folder / "labels" / "cor_t1.npz")
    labels = np.stack([t1_labels[u] for u in t1.sop_instance_uids])
    oedema = None
    stir_uid = None
    if with_stir and (folder / "labels" / "cor_stir.npz").exists():
        stir_labels = _labels_by_uid(folder / "labels" / "cor_stir.npz")
        (stir,) = load_volumes(folder / "dicom" / "cor_stir")
        oedema = np.stack([stir_labels[u] for u in stir.sop_instance_uids]) == SijLabel.OEDEMA
        stir_uid = stir.series_instance_uid
    fm_only = np.where(labels == SijLabel.OEDEMA, 0, labels).astype(np.uint8)
    model = ModelInfo("sij-demo", version, SHA, "research use only; trained on synthetic data", True)
    result = analyse(fm_only, oedema, t1.affine, sop_instance_uids=tuple(t1.sop_instance_uids),
                     frame_numbers=tuple(t1.frame_numbers), study_instance_uid=t1.study_instance_uid,
                     frame_of_reference_uid=t1.frame_of_reference_uid,
                     t1_series_instance_uid=t1.series_instance_uid, stir_series_instance_uid=stir_uid,
                     model=model)
    return t1, result


_CACHE: dict[tuple[str, int], Path] = {}


def phantom_folder(kind: str, seed: int) -> Path:
    """A phantom study made once per test session (shared by every module that asks)."""
    key = (kind, seed)
    if key not in _CACHE:
        root = Path(tempfile.mkdtemp(prefix=f"results-{kind}-"))
        atexit.register(shutil.rmtree, root, True)
        if kind == "lumbar":
            from inference.phantoms.lumbar import generate_lumbar_study as generate
        else:
            from inference.phantoms.sij import generate_sij_study as generate
        _CACHE[key] = Path(generate(root / f"{kind}-{seed}", seed))
    return _CACHE[key]


@pytest.fixture(scope="session")
def lumbar_folder() -> Path:
    """Lumbar phantom seed 1: three angled axial stacks, a herniation at each of three levels."""
    return phantom_folder("lumbar", LUMBAR_SEED)


@pytest.fixture(scope="session")
def sij_folder() -> Path:
    """SIJ phantom seed 4: fat metaplasia on both sides, STIR present."""
    return phantom_folder("sij", SIJ_SEED)


@pytest.fixture(scope="session")
def lumbar(lumbar_folder: Path) -> LumbarCase:
    axial, result = lumbar_result(lumbar_folder)
    return LumbarCase(lumbar_folder, axial, result)


@pytest.fixture(scope="session")
def sij(sij_folder: Path) -> SijCase:
    t1, result = sij_result(sij_folder)
    return SijCase(sij_folder, t1, result)


def dciodvfy_errors(ds: Dataset | Path, tmp_path: Path, name: str) -> list[str]:
    """Write ``ds`` (or take the file it names) and return dciodvfy's lines that start with ``Error``."""
    program = shutil.which("dciodvfy")
    if program is None:
        pytest.skip("dciodvfy is not installed (scripts/test installs it)")
    if isinstance(ds, Path):
        path = ds
    else:
        path = tmp_path / f"{name}.dcm"
        ds.save_as(path, enforce_file_format=True)
    proc = subprocess.run([program, "-new", str(path)], capture_output=True, text=True, timeout=120)
    lines = (proc.stdout + proc.stderr).splitlines()
    return [line for line in lines if re.match(r"^\s*Error", line)]
