"""``dicom-node infer`` end to end with the bundled weights (real networks; slow on CPU)."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import pytest

from dicom_node.cli import main
from inference.modelcard import bundled_weights

from tests.dicom_node.results.conftest import LUMBAR_SEED, dciodvfy_errors, phantom_folder

pytestmark = pytest.mark.slow


def test_infer_with_bundled_ldh_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not bundled_weights("ldh").is_file():
        pytest.skip("bundled LDH weights are not in this checkout")
    folder = phantom_folder("lumbar", LUMBAR_SEED)
    out = tmp_path / "out"
    code = main(["infer", str(folder / "dicom"), "--out", str(out), "--pipelines", "ldh", "--device", "cpu",
                 "--pdf", "--secondary-capture"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "ldh: " in printed and "Research use only" in printed
    srs = list(out.rglob("9002-SR-1.dcm"))
    assert len(srs) == 1
    sr = hd.sr.srread(srs[0])
    assert sr.content.get_planar_roi_measurement_groups() or "No disc herniation" in printed
    for path in out.rglob("*.dcm"):
        assert dciodvfy_errors(path, tmp_path, "") == [], path.name
