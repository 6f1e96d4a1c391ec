"""``dicom-node status`` shows each study's routing: rule, pipeline, roles, job; or why nothing runs.

Studies are stored and indexed as the SCP would, completed, and routed by the
real router (:func:`route_pending_studies`, the built-in rules) into a SQLite
database; ``status`` then reads that database through the CLI.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from config.settings import load_settings
from dicom_node.cli import main
from dicom_node.commands.status import routing_view
from dicom_node.jobs import route_pending_studies
from storage.db import make_engine, make_session_factory, upgrade
from storage.store import InstanceStore
from tests.dicom_node.indexing import ingest
from tests.dicom_node.test_routing import AXIAL, SAGITTAL, header

FORCED = 600.0


@pytest.fixture
def node(tmp_path: Path) -> Any:
    config = tmp_path / "node.yaml"
    config.write_text(
        f"storage_dir: {tmp_path / 'node'}\nmin_free_disk_mb: 0\n"
        f"assembly: {{forced_timeout_seconds: {FORCED}}}\n"
    )
    settings = load_settings(config, environ={})
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    yield config, settings, make_session_factory(engine), InstanceStore(tmp_path / "node" / "instances")
    engine.dispose()


def series(description: str, orientation: list[float], study_uid: str, number: int, count: int = 3) -> list[Dataset]:
    uid = generate_uid()
    out = []
    for k in range(count):
        ds = header(description, orientation, body="LSPINE", number=number)
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.InstanceNumber = study_uid, uid, k + 1
        ds.ImagePositionPatient = [0.0, 0.0, 4.0 * k]
        out.append(ds)
    return out


def status(config: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    assert main(["--config", str(config), "status", *extra]) == 0
    return capsys.readouterr().out


def by_uid(config: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, Any]]:
    return {s["study_instance_uid"]: s for s in json.loads(status(config, capsys, "--json"))["studies"]}


def test_status_shows_rule_pipeline_roles_and_job_or_why_not(
    node: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    config, settings, sessions, store = node
    now = datetime.now(timezone.utc)
    lumbar, brain, sag_only, receiving, unrouted_yet = (generate_uid() for _ in range(5))
    axial = series("t2_tse_tra", AXIAL, lumbar, 4)
    sagittal = series("t2_tse_sag", SAGITTAL, lumbar, 2)
    ingest(sessions, store, axial + sagittal, now=now)
    brain_ds = header("Ax T2 brain", AXIAL, body="HEAD")
    brain_ds.StudyInstanceUID = brain
    ingest(sessions, store, [brain_ds], now=now)
    ingest(sessions, store, series("t2_tse_sag", SAGITTAL, sag_only, 2), now=now)
    assert len(route_pending_studies(settings=settings, session_factory=sessions, store=store)) == 1
    ingest(sessions, store, series("t2_tse_tra", AXIAL, receiving, 4), now=now, complete=False)
    ingest(sessions, store, series("t2_tse_tra", AXIAL, unrouted_yet, 4), now=now)  # complete, router not run

    studies = by_uid(config, capsys)
    routed = studies[lumbar]["routing"]
    assert routed["state"] == "routed" and not routed["stale"]
    (rule,) = routed["rules"]
    assert (rule["rule"], rule["pipeline"], rule["status"]) == ("lumbar", "ldh", "routed")
    assert rule["roles"]["axial"] == {"series_instance_uid": axial[0].SeriesInstanceUID,
                                      "series_number": 4, "description": "t2_tse_tra"}
    assert rule["roles"]["sagittal"]["series_instance_uid"] == sagittal[0].SeriesInstanceUID
    assert rule["job"]["state"] == "pending" and rule["job"]["pipeline"] == "ldh"
    assert [j["id"] for j in studies[lumbar]["jobs"]] == [rule["job"]["id"]]
    assert any("role axial <- series #4" in r for r in routed["reasons"])

    assert studies[brain]["routing"]["state"] == "unrouted"
    assert studies[brain]["routing"]["lines"] == ["no rule matched: nothing to run"]
    assert studies[brain]["jobs"] == []

    waiting = studies[sag_only]["routing"]
    assert waiting["state"] == "waiting"
    assert waiting["rules"] == [{"rule": "lumbar", "pipeline": "ldh", "status": "waiting", "roles": {},
                                 "missing": ["axial"], "job": None}]
    assert studies[receiving]["routing"]["state"] == "receiving"
    assert studies[unrouted_yet]["routing"]["state"] == "pending"

    text = status(config, capsys)
    assert f'routing: routed: rule lumbar -> ldh: axial <- #4 "t2_tse_tra", sagittal <- #2 "t2_tse_sag"; ' \
           f'job #{rule["job"]["id"]} pending' in text
    assert "routing: no rule matched" in text
    assert "routing: waiting for required series: required series missing: axial (rule lumbar -> ldh)" in text
    assert "why: rule lumbar: role axial <- series #4" not in text
    assert "why: rule lumbar: role axial <- series #4" in status(config, capsys, "-v")


def test_missing_series_is_skipped_after_the_forced_timeout(node: Any, capsys: pytest.CaptureFixture[str]) -> None:
    config, settings, sessions, store = node
    long_ago = datetime.now(timezone.utc) - timedelta(seconds=FORCED + 60)
    study = generate_uid()
    ingest(sessions, store, series("t2_tse_sag", SAGITTAL, study, 2), now=long_ago)
    route_pending_studies(settings=settings, session_factory=sessions, store=store)
    view = by_uid(config, capsys)[study]["routing"]
    assert view["state"] == "skipped"
    assert view["lines"] == ["skipped: required series missing: axial (rule lumbar -> ldh)"]
    assert "routing: skipped: required series missing: axial" in status(config, capsys)


def test_routing_view_of_jobs_and_amendments() -> None:
    """The pure view: a dead job shows its reason; a decision for an older amendment says so."""
    now = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
    decision = {
        "outcome": "routed", "amendment": 0, "jobs": {"sij": 9}, "incomplete": [],
        "routed": [{"rule": "sij", "pipeline": "sij", "roles": {"t1": "1.2", "stir": None}, "priority": 0}],
        "series": {"1.2": {"series_number": 3.0, "description": "t1_tse_cor"}}, "reasons": ["r"],
    }
    study = {"state": "complete", "amendment": 0, "forced": False, "last_received_at": now.isoformat(),
             "routing": decision,
             "jobs": [{"id": 9, "pipeline": "sij", "state": "dead", "attempts": 1, "error": "weights missing"}]}
    view = routing_view(study, forced_timeout_seconds=FORCED, now=now)
    assert view["state"] == "routed"
    assert view["lines"] == ['routed: rule sij -> sij: t1 <- #3 "t1_tse_cor", stir: none (optional); '
                             "job #9 dead after 1 attempt(s): weights missing"]
    amended = routing_view({**study, "state": "amended", "amendment": 1}, forced_timeout_seconds=FORCED, now=now)
    assert amended["stale"] and amended["lines"][0].startswith("amendment 1 not routed yet")
    forced = {**study, "forced": True, "routing": {**decision, "routed": [], "outcome": "incomplete",
                                                   "incomplete": [{"rule": "sij", "pipeline": "sij",
                                                                   "missing": ["t1"]}]}}
    assert routing_view(forced, forced_timeout_seconds=FORCED, now=now)["state"] == "skipped"
