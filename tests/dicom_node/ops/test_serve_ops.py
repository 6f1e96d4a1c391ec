"""The ops endpoint of a real ``dicom-node serve`` subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid
from pynetdicom.dsutils import encode

from tests.conftest import REPO_ROOT
from tests.dicom_node.ops.promtext import parse, value
from tests.dicom_node.serve_harness import ServeProcess, associate, make_instance, start_serve


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    proc = start_serve(tmp_path_factory.mktemp("ops") / "node", allowed_calling_aets=["TEST_SCU"])
    try:
        yield proc
    finally:
        if proc.proc.poll() is None:
            assert proc.stop() == 0


def _get(node: ServeProcess, path: str) -> tuple[int, str]:
    url = f"http://127.0.0.1:{node.settings.http_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _metrics(node: ServeProcess) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    status, text = _get(node, "/metrics")
    assert status == 200
    return parse(text)[1]


def test_healthz_and_readyz(node: ServeProcess) -> None:
    assert _get(node, "/healthz") == (200, "ok\n")
    status, body = _get(node, "/readyz")
    doc = json.loads(body)
    assert {"database", "store", "workers", "weights"} <= set(doc["checks"])
    for name in ("database", "store", "workers", "weights"):  # bundled weights: all there
        assert doc["checks"][name]["ok"], doc
    assert (status, doc["ready"]) == (200, True)
    assert "job-worker-: 1/1" in doc["checks"]["workers"]["detail"]


def test_metrics_count_what_the_node_received_and_refused(node: ServeProcess) -> None:
    before = _metrics(node)
    study, series = generate_uid(), generate_uid()
    datasets = [make_instance(study, series, i) for i in range(1, 4)]
    sizes = 0
    assoc = associate(node.port, [(MRImageStorage, [ExplicitVRLittleEndian])])
    assert assoc.is_established
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            assert int(status.Status) == 0
            encoded = encode(ds, False, True)
            assert encoded is not None
            sizes += len(encoded)
    finally:
        assoc.release()
    refused = associate(node.port, calling_ae="NOT_ALLOWED")
    assert refused.is_rejected

    after = _metrics(node)

    def delta(name: str) -> float:
        return value(after, name) - value(before, name)

    assert delta("dicom_node_instances_received_total") == 3
    # the node stores the data set as encoded on the wire, plus its file meta
    assert delta("dicom_node_received_bytes_total") > sizes
    assert delta("dicom_node_associations_rejected_total") == 1
    assert value(after, "dicom_node_database_up") == 1
    assert value(after, "dicom_node_store_free_bytes") > 0
    held = associate(node.port)  # an open association shows in the in-process gauge
    assert held.is_established
    try:
        assert value(_metrics(node), "dicom_node_active_associations") >= 1
    finally:
        held.release()
    assert value(after, "dicom_node_studies", state="receiving") + value(
        after, "dicom_node_studies", state="complete") >= 1


def test_http_port_closed_after_stop(tmp_path: Path) -> None:
    proc = start_serve(tmp_path / "node")
    assert _get(proc, "/healthz")[0] == 200
    assert proc.stop() == 0
    with pytest.raises(urllib.error.URLError):
        _get(proc, "/healthz")


def test_json_logs_carry_uids_and_no_patient_identifiers(tmp_path: Path) -> None:
    # start_serve waits for the text log's "ready:" line: start it in text mode, note the
    # config, stop it, then run the same node again with JSON logs
    first = start_serve(tmp_path / "node")
    assert first.stop() == 0
    config = yaml.safe_load(first.config_path.read_text())
    config.update(log_json=True, log_level="INFO")
    first.config_path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICOM_NODE_")}
    log_path = tmp_path / "json.log"
    with open(log_path, "wb") as out:
        popen = subprocess.Popen([sys.executable, "-m", "dicom_node", "serve"], cwd=REPO_ROOT,
                                 env={**env, "DICOM_NODE_CONFIG": str(first.config_path)},
                                 stdout=out, stderr=subprocess.STDOUT)
    proc = ServeProcess(popen, first.port, first.ae_title, first.directory, first.config_path,
                        first.settings, log_path)
    try:
        deadline = time.monotonic() + 180
        while '"ready: ' not in proc.log():
            assert popen.poll() is None and time.monotonic() < deadline, proc.log()
            time.sleep(0.2)
        study, series = generate_uid(), generate_uid()
        assoc = associate(proc.port, [(MRImageStorage, [ExplicitVRLittleEndian])])
        assert assoc.is_established
        try:
            ds = make_instance(study, series, 1)  # PatientID TEST123, PatientName Test^Patient
            assert int(assoc.send_c_store(ds).Status) == 0
        finally:
            assoc.release()
        deadline = time.monotonic() + 120
        while "study complete" not in proc.log() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        assert proc.stop() == 0
    log = proc.log()
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert any(r.get("study_uid") == study and "complete" in r["message"] for r in records), log
    assert "TEST123" not in log and "Test^Patient" not in log
