"""``dicom-node status`` (and ``--json``) after instances arrived."""

from __future__ import annotations

import json
import time

import pytest

from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from dicom_node.cli import main
from tests.dicom_node.serve_harness import ServeProcess, associate, make_instance



def status_output(node: ServeProcess, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    """``dicom-node status`` run in this process (the CLI's imports are paid once)."""
    assert main(["--config", str(node.config_path), "status", *extra]) == 0
    return capsys.readouterr().out


def test_status_lists_studies_series_counts_and_state(
    shared_node: ServeProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    assert set(json.loads(status_output(shared_node, capsys, "--json"))) == {"studies"}
    study, series = generate_uid(), generate_uid()
    assoc = associate(shared_node.port, [(MRImageStorage, [ExplicitVRLittleEndian])])
    try:
        for i in range(3):
            assert assoc.send_c_store(make_instance(study, series, i + 1)).Status == 0
    finally:
        assoc.release()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        studies = json.loads(status_output(shared_node, capsys, "--json"))["studies"]
        (entry,) = [s for s in studies if s["study_instance_uid"] == study]
        if entry["state"] == "complete":
            break
        time.sleep(0.5)
    assert entry["study_instance_uid"] == study
    assert entry["state"] == "complete" and entry["forced"] is False
    assert entry["instance_count"] == 3
    assert [(s["series_instance_uid"], s["instance_count"]) for s in entry["series"]] == [(series, 3)]
    text = status_output(shared_node, capsys)
    assert study in text and "complete" in text and "3 instances" in text
    # no patient identifiers in the output
    assert "TEST123" not in text and "Test^Patient" not in text
