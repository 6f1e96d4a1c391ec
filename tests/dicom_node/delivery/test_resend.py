"""``dicom-node resend``: a dead study comes back and is delivered."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from config.settings import Settings
from dicom_node.cli import main
from dicom_node.delivery.worker import DeliveryWorker
from dicom_node.server import store_root
from storage.db import make_engine, make_session_factory, upgrade
from storage.models import Delivery, DeliveryState
from storage.store import InstanceStore
from tests.dicom_node.delivery.conftest import Outbox, at, with_destination
from tests.dicom_node.delivery.peers import RecordingSCP


@pytest.fixture
def node_outbox(settings: Settings, tmp_path: Path) -> Iterator[Outbox]:
    """The outbox of the node that ``settings`` describes (its database and store)."""
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    store = InstanceStore(store_root(settings))
    yield Outbox(make_session_factory(engine), store, tmp_path / "made")
    engine.dispose()


def _config(settings: Settings, tmp_path: Path) -> Path:
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(settings.model_dump(mode="json", exclude_defaults=True)))
    return path


def _states(outbox: Outbox) -> list[DeliveryState]:
    with outbox.sessions() as session:
        return list(session.scalars(sa.select(Delivery.state).order_by(Delivery.id)))


def test_resend_study_and_all_dead(
    node_outbox: Outbox, scp: RecordingSCP, settings: Settings, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = with_destination(settings, scp.port, max_attempts=1)
    config = _config(settings, tmp_path)
    first, first_uids = node_outbox.add_study(2, ["pacs"])
    _, second_uids = node_outbox.add_study(1, ["pacs"])
    scp.status = 0xC000
    worker = DeliveryWorker(settings, node_outbox.sessions, node_outbox.store, rng=random.Random(1))
    assert worker.run_once(at(0)) == 3
    assert _states(node_outbox) == [DeliveryState.DEAD] * 3
    scp.status = 0x0000

    assert main(["--config", str(config), "resend", "--study", first, "--send"]) == 0
    assert "2 deliveries queued again" in capsys.readouterr().out
    assert sorted(scp.stored) == sorted(first_uids)
    assert _states(node_outbox) == [DeliveryState.DELIVERED] * 2 + [DeliveryState.DEAD]

    assert main(["--config", str(config), "resend", "--all-dead"]) == 0  # left to the node
    assert _states(node_outbox)[2] is DeliveryState.PENDING
    assert worker.run_once() == 1
    assert sorted(scp.stored) == sorted(first_uids + second_uids)

    assert main(["--config", str(config), "resend", "--all-dead"]) == 1  # nothing dead now
    assert main(["--config", str(config), "resend", "--delivery", "99999"]) == 1  # no such row
