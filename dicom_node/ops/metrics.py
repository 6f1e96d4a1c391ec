"""``/metrics``: Prometheus text exposition (format 0.0.4), written by hand.

Counts come from the database, not from counters in this process, so that they
are right whatever process received, ran or delivered (several SCP front-ends,
Celery workers) and survive a restart: every scrape asks the database. What only
this process knows (associations open right now, C-STOREs in flight) comes in as
gauges, callables passed by the caller.

Families
--------
``dicom_node_instances_received_total``, ``dicom_node_received_bytes_total``
    Instances indexed (each stored version counts) and their bytes.
``dicom_node_studies{state}``, ``dicom_node_studies_completed_total``
    Studies by assembly state (every state, zeros included); studies that
    completed at least once.
``dicom_node_jobs{pipeline,state}``
    Job rows by state (every state of each pipeline that has jobs).
``dicom_node_inference_duration_seconds{pipeline}``
    Histogram of ``finished_at - started_at`` of succeeded jobs (the last attempt).
``dicom_node_deliveries{destination,state}``
    Delivery rows (one per result and destination) by state (every state of each
    destination that has rows).
``dicom_node_associations_rejected_total``, ``dicom_node_associations_aborted_total``
    From the audit trail.
``dicom_node_store_failures_total{status}``
    C-STOREs answered with a failure status, from the audit trail.
``dicom_node_store_free_bytes``, ``dicom_node_store_min_free_bytes``
    Free space of the store's file system and the floor below which C-STORE refuses.
``dicom_node_gpu_memory_used_bytes{device}``, ``dicom_node_gpu_memory_total_bytes{device}``
    Only when this process has imported torch and CUDA is available.
``dicom_node_database_up``
    0 when the database could not be read (the database families are then absent).
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from storage.models import (
    AuditEvent,
    Delivery,
    DeliveryState,
    Instance,
    Job,
    JobState,
    Study,
    StudyState,
)
from storage.store import InstanceStore

__all__ = ["CONTENT_TYPE", "LATENCY_BUCKETS", "Family", "collect_metrics", "render"]

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: upper bounds (seconds) of the inference latency histogram
LATENCY_BUCKETS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)

Labels = tuple[tuple[str, str], ...]


@dataclass
class Family:
    """One metric family: its samples as ``(name suffix, labels, value)``."""

    name: str
    kind: str  # counter | gauge | histogram
    help: str
    samples: list[tuple[str, Labels, float]] = field(default_factory=list)

    def add(self, value: float, suffix: str = "", **labels: str) -> None:
        """Add a sample (labels in the order given)."""
        self.samples.append((suffix, tuple(labels.items()), float(value)))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def render(families: Iterable[Family]) -> str:
    """The exposition text of ``families`` (HELP, TYPE, then the samples)."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {family.help}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for suffix, labels, value in family.samples:
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            lines.append(f"{family.name}{suffix}{{{text}}} {_number(value)}" if text
                         else f"{family.name}{suffix} {_number(value)}")
    return "\n".join(lines) + "\n"


def _histogram(name: str, help_: str, observations: Mapping[str, Sequence[float]],
               buckets: Sequence[float]) -> Family:
    family = Family(name, "histogram", help_)
    for pipeline in sorted(observations):
        values = observations[pipeline]
        for bound in (*buckets, math.inf):
            family.add(sum(v <= bound for v in values), "_bucket", pipeline=pipeline,
                       le=_number(bound))
        family.add(sum(values), "_sum", pipeline=pipeline)
        family.add(len(values), "_count", pipeline=pipeline)
    return family


def database_families(session: Session) -> list[Family]:
    """The families counted in the database (see the module docstring)."""
    count, size = session.execute(
        sa.select(sa.func.count(Instance.id), sa.func.coalesce(sa.func.sum(Instance.size_bytes), 0))
    ).one()
    instances = Family("dicom_node_instances_received_total", "counter",
                       "Instances received and indexed (each stored version counts).")
    instances.add(count)
    received = Family("dicom_node_received_bytes_total", "counter", "Bytes of the instances received.")
    received.add(size)

    studies = Family("dicom_node_studies", "gauge", "Studies by assembly state.")
    by_state = {state: n for state, n in session.execute(
        sa.select(Study.state, sa.func.count()).group_by(Study.state))}
    for study_state in StudyState:
        studies.add(by_state.get(study_state, 0), state=study_state.value)
    completed = Family("dicom_node_studies_completed_total", "counter",
                       "Studies that completed assembly at least once.")
    completed.add(session.scalar(
        sa.select(sa.func.count()).select_from(Study).where(Study.completed_at.is_not(None))) or 0)

    jobs = Family("dicom_node_jobs", "gauge", "Jobs by pipeline and state.")
    rows = session.execute(
        sa.select(Job.pipeline, Job.state, sa.func.count()).group_by(Job.pipeline, Job.state)
    )
    job_counts = {(pipeline, job_state): n for pipeline, job_state, n in rows}
    for pipeline in sorted({p for p, _ in job_counts}):  # every state of each pipeline seen
        for job_state in JobState:
            jobs.add(job_counts.get((pipeline, job_state), 0), pipeline=pipeline, state=job_state.value)

    durations: dict[str, list[float]] = {}
    for pipeline, started, finished in session.execute(
        sa.select(Job.pipeline, Job.started_at, Job.finished_at).where(
            Job.state == JobState.SUCCEEDED, Job.started_at.is_not(None),
            Job.finished_at.is_not(None))
    ):
        if started is not None and finished is not None:
            seconds = (finished - started).total_seconds()
            durations.setdefault(pipeline, []).append(max(0.0, seconds))
    latency = _histogram("dicom_node_inference_duration_seconds",
                         "Time from start to end of succeeded jobs (last attempt), per pipeline.",
                         durations, LATENCY_BUCKETS)

    deliveries = Family("dicom_node_deliveries", "gauge",
                        "Result deliveries (one per result and destination) by state.")
    delivery_rows = session.execute(
        sa.select(Delivery.destination, Delivery.state, sa.func.count())
        .group_by(Delivery.destination, Delivery.state)
    )
    delivery_counts = {(dest, delivery_state): n for dest, delivery_state, n in delivery_rows}
    for destination in sorted({d for d, _ in delivery_counts}):
        for delivery_state in DeliveryState:
            deliveries.add(delivery_counts.get((destination, delivery_state), 0),
                           destination=destination, state=delivery_state.value)

    audit = dict(
        ((kind, outcome), n) for kind, outcome, n in session.execute(
            sa.select(AuditEvent.kind, AuditEvent.outcome, sa.func.count())
            .where(AuditEvent.kind.in_(("association", "store")))
            .group_by(AuditEvent.kind, AuditEvent.outcome))
    )
    rejected = Family("dicom_node_associations_rejected_total", "counter",
                      "Associations refused (calling AE, host or called AE not allowed).")
    rejected.add(audit.get(("association", "rejected"), 0))
    aborted = Family("dicom_node_associations_aborted_total", "counter",
                     "Associations aborted by the peer or the network.")
    aborted.add(audit.get(("association", "aborted"), 0))
    failures = Family("dicom_node_store_failures_total", "counter",
                      "C-STORE requests answered with a failure status, by status.")
    for (kind, outcome), n in sorted(audit.items()):
        if kind == "store" and outcome != "0x0000":
            failures.add(n, status=outcome)
    return [instances, received, studies, completed, jobs, latency, deliveries,
            rejected, aborted, failures]


def gpu_families() -> list[Family]:
    """GPU memory per device, only if this process already imported torch and has CUDA."""
    torch = sys.modules.get("torch")
    if torch is None:
        return []
    try:
        if not torch.cuda.is_available():
            return []
        used = Family("dicom_node_gpu_memory_used_bytes", "gauge", "GPU memory in use, per device.")
        total = Family("dicom_node_gpu_memory_total_bytes", "gauge", "GPU memory, per device.")
        for index in range(torch.cuda.device_count()):
            free_b, total_b = torch.cuda.mem_get_info(index)
            used.add(total_b - free_b, device=f"cuda:{index}")
            total.add(total_b, device=f"cuda:{index}")
        return [used, total]
    except Exception:  # noqa: BLE001 - a metrics scrape must not fail on a driver hiccup
        logger.warning("could not read GPU memory", exc_info=True)
        return []


def collect_metrics(
    session_factory: sessionmaker[Session],
    store: InstanceStore | None = None,
    *,
    gauges: Mapping[str, tuple[str, Callable[[], float]]] | None = None,
) -> str:
    """The whole ``/metrics`` page.

    Parameters
    ----------
    session_factory
        Sessions on the node's database.
    store
        The instance store (for free space), if any.
    gauges
        In-process gauges: metric name to ``(help, callable)``; a callable that
        raises leaves its gauge out.
    """
    families: list[Family] = []
    up = Family("dicom_node_database_up", "gauge", "1 when the database could be read.")
    try:
        with session_factory() as session:
            db = database_families(session)
        up.add(1)
    except Exception:  # noqa: BLE001 - report the outage as a metric, keep the rest
        logger.warning("metrics: database unreadable", exc_info=True)
        db = []
        up.add(0)
    families += [up, *db]
    if store is not None:
        free = Family("dicom_node_store_free_bytes", "gauge",
                      "Free bytes on the store's file system.")
        free.add(store.free_bytes())
        floor = Family("dicom_node_store_min_free_bytes", "gauge",
                       "Free-space floor below which C-STORE answers 0xA700.")
        floor.add(store.min_free_bytes)
        families += [free, floor]
    for name, (help_, read) in (gauges or {}).items():
        try:
            value = float(read())
        except Exception:  # noqa: BLE001 - one bad gauge must not hide the others
            logger.debug("gauge %s failed", name, exc_info=True)
            continue
        gauge = Family(name, "gauge", help_)
        gauge.add(value)
        families.append(gauge)
    families += gpu_families()
    return render(families)
