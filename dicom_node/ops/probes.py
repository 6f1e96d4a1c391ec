"""Readiness checks: each one a callable returning a :class:`Check`.

The HTTP server only runs them (:mod:`dicom_node.ops.http`); what a check looks
at is decided where it is built, so the server knows nothing of executors,
databases or models. A check that raises counts as failed, with the exception
as its detail.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from storage.store import InstanceStore

__all__ = [
    "Check",
    "Probe",
    "database_probe",
    "run_probes",
    "store_probe",
    "threads_probe",
    "weights_probe",
]

logger = logging.getLogger(__name__)

#: where the bundled demo weights live (``inference.modelcard.BUNDLED_DIR``; named
#: here rather than imported because that module imports torch, which a readiness
#: check must not pull into a process that has not loaded a model yet)
BUNDLED_WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "inference" / "weights"


@dataclass(frozen=True)
class Check:
    """The outcome of one readiness check.

    Attributes
    ----------
    ok
        Whether this part is ready.
    detail
        One line for the operator: what was found, or what is wrong.
    """

    ok: bool
    detail: str


Probe = Callable[[], Check]


def run_probes(probes: Mapping[str, Probe]) -> dict[str, Check]:
    """Run every probe; an exception is a failed check, never an error of the caller."""
    results: dict[str, Check] = {}
    for name, probe in probes.items():
        try:
            results[name] = probe()
        except Exception as exc:  # noqa: BLE001 - a readiness check reports, it does not raise
            logger.debug("readiness check %s raised", name, exc_info=True)
            results[name] = Check(False, f"{type(exc).__name__}: {exc}")
    return results


def database_probe(session_factory: sessionmaker[Session]) -> Probe:
    """Ready when ``SELECT 1`` succeeds on the node's database."""

    def probe() -> Check:
        with session_factory() as session:
            session.execute(sa.select(1)).scalar_one()
        return Check(True, "reachable")

    return probe


def store_probe(store: InstanceStore) -> Probe:
    """Ready when the store root takes a file and its free space is above the floor."""

    def probe() -> Check:
        with tempfile.NamedTemporaryFile(dir=store.root, prefix=".tmp-ready-", suffix=".partial"):
            pass
        free = store.free_bytes()
        if not store.has_space():
            return Check(False, f"{free} bytes free, below the floor of {store.min_free_bytes}")
        return Check(True, f"writable, {free} bytes free")

    return probe


def threads_probe(expected: Mapping[str, int]) -> Probe:
    """Ready when at least ``expected[prefix]`` live threads have a name starting with ``prefix``.

    The executor and the delivery worker name their threads (``job-worker-N``,
    ``delivery``); counting live threads by name needs nothing of their internals.
    """

    def probe() -> Check:
        names = [t.name for t in threading.enumerate() if t.is_alive()]
        found = {prefix: sum(n.startswith(prefix) for n in names) for prefix in expected}
        missing = {p: (found[p], n) for p, n in expected.items() if found[p] < n}
        summary = ", ".join(f"{p}: {found[p]}/{n}" for p, n in expected.items())
        if missing:
            return Check(False, f"threads not running ({summary})")
        return Check(True, summary or "none expected")

    return probe


def weights_probe(weights: Mapping[str, Path | None]) -> Probe:
    """Ready when every pipeline's weights file and its model card are there and readable.

    Parameters
    ----------
    weights
        Model name (``ldh``, ``levels``, ``sij``) to the configured weights file,
        or ``None`` for the bundled demo weights of that name.

    Notes
    -----
    The checksum against the card is verified when a worker loads the weights
    (a failure there fails the job with its reason); this check is cheap enough to
    run on every request: existence, and a card that parses and names a sha256.
    """

    def probe() -> Check:
        problems: list[str] = []
        found: list[str] = []
        for name, configured in weights.items():
            path = configured or BUNDLED_WEIGHTS_DIR / f"{name}.pt"
            card = path.with_suffix(".card.json")
            if not path.is_file():
                problems.append(f"{name}: {path} missing")
                continue
            try:
                data = json.loads(card.read_text(encoding="utf-8"))
                version = str(data["version"])
                str(data["sha256"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                problems.append(f"{name}: card {card.name} unusable ({type(exc).__name__})")
                continue
            found.append(f"{name} {version}")
        if problems:
            return Check(False, "; ".join(problems))
        return Check(True, ", ".join(found))

    return probe
