"""The job function: one pipeline on one amendment of a study, results into the outbox.

Shared by every executor (the local pool in ``serve`` and the Celery task):

1. :func:`route_completed_study` (the study-complete subscriber's work): read one
   header per series from the store, apply the routing rules, store the decision
   on the study and queue one job per routed pipeline, unique per (study,
   pipeline, model version, amendment);
2. :meth:`JobRunner.process_next`: claim the most urgent due job, load its series
   from the store, run the pipeline (models loaded once per process and kept;
   inference serialised per device), encode SEG + SR, write the files to the
   store's ``results/`` folder and record them (:func:`storage.jobs.add_result`)
   with their deliveries, in one transaction, *before* anything is sent; then
   mark the job succeeded. A failure marks it failed with its reason and a retry
   time (exponential backoff), or dead after ``max_attempts`` or when retrying
   cannot help (weights missing, no series for a role).

Results' SOP Instance UIDs are derived from (study, pipeline, model), so a job run
twice (a worker killed after writing, an amendment) replaces its results rather
than adding a second set.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import socket
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlalchemy.orm import Session, sessionmaker

from config.settings import JobSettings, Settings
from dicom_node.delivery.outbox import enqueue_results
from dicom_node.routing import RouteDecision, Rule, SeriesInfo, parse_rules, route_study
from storage import repo
from storage.errors import StorageError
from storage.jobs import add_result, claim_job, enqueue_job, fail_job, finish_job, requeue_stale_jobs
from storage.models import Job, JobState, ResultKind
from storage.routing_repo import (
    get_job,
    requeue_job,
    running_jobs,
    set_study_routing,
    studies_to_route,
    study_by_id,
)
from storage.store import InstanceStore, atomic_write, uid_digest

__all__ = [
    "JobError",
    "JobPolicy",
    "JobRunner",
    "PermanentJobError",
    "PipelineCache",
    "model_version",
    "route_completed_study",
    "route_pending_studies",
    "worker_name",
]

logger = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class JobError(RuntimeError):
    """A job failed; retried with backoff until the attempts run out."""


class PermanentJobError(JobError):
    """A job failed in a way a retry cannot fix (dead at once)."""


@dataclass(frozen=True)
class JobPolicy:
    """Retries and timeout of jobs (``settings.jobs``; see docs/orchestration.md)."""

    max_attempts: int = 3
    backoff_initial_seconds: float = 5.0
    backoff_max_seconds: float = 600.0
    #: a job running longer than this is taken to be lost and is run again
    timeout_seconds: float = 900.0

    @classmethod
    def from_settings(cls, jobs: JobSettings) -> JobPolicy:
        """The policy the ``jobs:`` settings section describes."""
        return cls(
            max_attempts=jobs.max_attempts,
            backoff_initial_seconds=jobs.backoff_initial_seconds,
            backoff_max_seconds=jobs.backoff_max_seconds,
            timeout_seconds=jobs.timeout_seconds,
        )

    def retry_delay(self, attempts: int) -> float:
        """Seconds before the next try after the ``attempts``-th failure."""
        return float(min(self.backoff_max_seconds, self.backoff_initial_seconds * 2 ** max(attempts - 1, 0)))


def worker_name() -> str:
    """``host:pid`` of this process (stored on the jobs it runs)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- models, loaded once per process -------------------------------------------------


def _weights(settings: Settings, pipeline: str) -> Path | None:
    return settings.models.ldh_weights if pipeline == "ldh" else settings.models.sij_weights


def model_version(settings: Settings, pipeline: str) -> str:
    """The version on the card of the weights ``pipeline`` would load (``"unavailable"`` if none)."""
    from inference.modelcard import WeightsError, bundled_weights, read_card

    path = _weights(settings, pipeline) or bundled_weights(pipeline)
    try:
        return read_card(path).version
    except WeightsError as exc:
        logger.warning("%s weights: %s", pipeline, exc)
        return "unavailable"


class PipelineCache:
    """The pipelines of this process, built on first use and kept; one lock per device."""

    _device_locks: dict[str, threading.Lock] = {}
    _class_lock = threading.Lock()

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pipelines: dict[str, Any] = {}
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()
        #: one build lock per pipeline: a job waits for its own pipeline's build, not another's
        self._build_locks: dict[str, threading.Lock] = {}

    def get(self, pipeline: str) -> Any:
        """The pipeline ``ldh`` or ``sij`` (built once).

        Raises
        ------
        PermanentJobError
            When its weights cannot be loaded (the same failure every time).
        """
        with self._lock:
            build_lock = self._build_locks.setdefault(pipeline, threading.Lock())
        with build_lock:
            if pipeline in self._pipelines:
                return self._pipelines[pipeline]
            if pipeline in self._errors:
                raise PermanentJobError(self._errors[pipeline])
            try:
                if pipeline == "ldh":
                    from inference.ldh.pipeline import LdhPipeline

                    built: Any = LdhPipeline.from_settings(self.settings, levels_model=self._levels_model())
                elif pipeline == "sij":
                    from inference.sij.pipeline import SijPipeline

                    built = SijPipeline.from_weights(
                        self.settings.models.sij_weights, device=self.settings.device, flip_tta=self.settings.models.flip_tta
                    )
                else:
                    raise PermanentJobError(f"unknown pipeline {pipeline!r}")
            except PermanentJobError:
                raise
            except Exception as exc:  # missing weights, checksum, torch: the same next time
                self._errors[pipeline] = f"{pipeline} pipeline not available: {exc}"
                raise PermanentJobError(self._errors[pipeline]) from exc
            self._pipelines[pipeline] = built
            logger.info("loaded the %s pipeline", pipeline)
            return built

    def _levels_model(self) -> Any:
        """The sagittal level finder's network (``models.levels_weights``, else bundled), loaded once.

        Without it the LDH pipeline would load the bundled one again on every job
        (~0.3-0.5 s of CPU) and ignore ``models.levels_weights``. ``None`` when it
        cannot be loaded: the pipeline then tries per study and falls back to the
        stack order with the reason, as it always did.
        """
        try:
            from inference.levels import load_levels_model
            from inference.runtime import select_device

            return load_levels_model(self.settings.models.levels_weights, select_device(self.settings.device))
        except Exception as exc:  # the level finder is optional: grading goes on without it
            logger.warning("disc-level model not loaded (%s); levels per study or from the stack order", exc)
            return None

    def preload(self, pipelines: Sequence[str]) -> None:
        """Build ``pipelines`` now (at start) rather than on the first study; failures are kept for the jobs."""
        for pipeline in pipelines:
            try:
                self.get(pipeline)
            except PermanentJobError as exc:
                logger.warning("%s (its jobs will fail with this reason)", exc)

    def device_lock(self, pipeline: str) -> threading.Lock:
        """The lock serialising inference on the device ``pipeline`` runs on."""
        runner = self._pipelines.get(pipeline)
        device = str(getattr(runner, "device", self.settings.device))
        with self._class_lock:
            return self._device_locks.setdefault(device, threading.Lock())


# -- routing on completion -----------------------------------------------------------


def _series_of_study(session: Session, store: InstanceStore, study_uid: str) -> dict[str, list[str]]:
    """Series UID -> instance paths (relative to the store), in store order."""
    by_series: dict[str, list[str]] = defaultdict(list)
    for instance in repo.instances_of_study(session=session, study_uid=study_uid):
        by_series[instance.series.series_instance_uid].append(instance.path)
    return dict(by_series)


def route_completed_study(
    *,
    settings: Settings,
    session_factory: sessionmaker[Session],
    store: InstanceStore,
    study_id: int,
    amendment: int,
    rules: Sequence[Rule] | None = None,
    now: datetime | None = None,
) -> tuple[RouteDecision, list[int]]:
    """Route a completed study (or amendment), store the decision, queue its jobs.

    Idempotent per ``(study, amendment)``: the jobs' unique key makes a second call
    queue nothing new. Returns the decision and the ids of the jobs created.
    """
    now = now or _utcnow()
    if rules is None:
        rules = parse_rules(settings.routing, priorities=settings.jobs.priorities)
    rules = list(rules)
    created: list[int] = []
    with session_factory() as session:
        study = study_by_id(session=session, study_id=study_id)
        if study is None:
            raise StorageError(f"no study with id {study_id}")
        study_uid = study.study_instance_uid
        series = _series_of_study(session, store, study_uid)
        infos = []
        for series_uid, paths in series.items():
            try:
                header = dcmread(store.path(paths[0]), stop_before_pixels=True)
            except Exception as exc:  # an unreadable file is routed as nothing, with the reason
                logger.warning("cannot read a header of series %s: %s", series_uid, exc,
                               extra={"study_uid": study_uid})
                continue
            infos.append(SeriesInfo(series_uid, header, len(paths)))
        decision = route_study(infos, rules)
        record = decision.as_dict()
        record["amendment"] = amendment
        record["decided_at"] = now.isoformat()
        record["jobs"] = {}
        for pipeline in decision.pipelines():
            version = model_version(settings, pipeline)
            job, new = enqueue_job(
                session=session, study_id=study_id, pipeline=pipeline, model_version=version,
                amendment=amendment, now=now, priority=decision.priority_of(pipeline),
            )
            record["jobs"][pipeline] = job.id
            if new:
                created.append(job.id)
        set_study_routing(session=session, study_id=study_id, decision=record)
        session.commit()
    logger.info("routed: %s (%s)", decision.outcome, ", ".join(decision.pipelines()) or "no pipeline",
                extra={"study_uid": study_uid})
    for reason in decision.reasons:
        logger.debug("routing: %s", reason, extra={"study_uid": study_uid})
    return decision, created


def route_pending_studies(
    *,
    settings: Settings,
    session_factory: sessionmaker[Session],
    store: InstanceStore,
    rules: Sequence[Rule] | None = None,
) -> list[int]:
    """Route every complete study whose current amendment has no decision yet; new job ids.

    Driven by the database rather than by the completion event, so that a study
    completed just before a crash is routed after the restart. The assembler's
    subscriber only wakes the executor (it runs inside the assembler's transaction).
    """
    with session_factory() as session:
        todo = studies_to_route(session=session)
    created: list[int] = []
    for study_id, amendment in todo:
        try:
            _, new = route_completed_study(
                settings=settings, session_factory=session_factory, store=store,
                study_id=study_id, amendment=amendment, rules=rules,
            )
        except Exception:  # one bad study must not stop the others; logged with its cause
            logger.exception("routing study %d failed", study_id)
            continue
        created.extend(new)
    return created


# -- running a job -------------------------------------------------------------------


@dataclass
class JobOutcome:
    """What one job produced."""

    job_id: int
    study_uid: str
    pipeline: str
    summary: str
    result_ids: list[int] = field(default_factory=list)


def _encode(datasets: Sequence[Dataset]) -> list[tuple[Dataset, bytes]]:
    out = []
    for ds in datasets:
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        out.append((ds, buffer.getvalue()))
    return out


def _kind(ds: Dataset) -> ResultKind:
    """SEG, SR, PDF (Encapsulated PDF, Modality DOC) or SC (Secondary Capture key image)."""
    modality = str(ds.get("Modality", ""))
    if modality == "SEG":
        return ResultKind.SEG
    if modality == "SR":
        return ResultKind.SR
    if modality == "DOC" or "EncapsulatedDocument" in ds:
        return ResultKind.PDF
    return ResultKind.SC


def result_relpath(study_uid: str, sop_uid: str) -> str:
    """Where a result object lives in the store: ``results/<study>/<sop>.dcm``."""
    return f"results/{uid_digest(study_uid)}/{uid_digest(sop_uid)}.dcm"


class JobRunner:
    """Claims and runs jobs in this process (any executor's workers use one).

    Parameters
    ----------
    settings
        Destinations, device, weights.
    session_factory, store
        The database and the instance store (shared with the SCP).
    policy
        Retries and timeout; default ``settings.jobs``.
    on_results
        Called after results and their deliveries are committed (wake the sender).
    """

    def __init__(
        self,
        settings: Settings,
        session_factory: sessionmaker[Session],
        store: InstanceStore,
        *,
        policy: JobPolicy | None = None,
        on_results: Callable[[], None] | None = None,
        pipelines: PipelineCache | None = None,
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.store = store
        self.policy = policy or JobPolicy.from_settings(settings.jobs)
        self.on_results = on_results
        self.pipelines = pipelines or PipelineCache(settings)
        self.worker = worker_name()

    # -- recovery -----------------------------------------------------------------

    def recover(self, now: datetime | None = None) -> int:
        """Requeue running jobs whose worker is gone: a dead process on this host, or timed out."""
        now = now or _utcnow()
        host = socket.gethostname()
        count = 0
        with self.session_factory() as session:
            for job in running_jobs(session=session):
                owner_host, _, pid = (job.worker or "").rpartition(":")
                if owner_host == host and pid.isdigit() and not _pid_alive(int(pid)):
                    if requeue_job(session=session, job_id=job.id, error=f"worker {job.worker} died", now=now):
                        count += 1
            count += requeue_stale_jobs(
                session=session, started_before=now - timedelta(seconds=self.policy.timeout_seconds), now=now,
            )
            session.commit()
        if count:
            logger.warning("requeued %d job(s) whose worker died or timed out", count)
        return count

    # -- one job ------------------------------------------------------------------

    def process_next(self, now: datetime | None = None) -> JobOutcome | None:
        """Claim one due job and run it; ``None`` when nothing was due."""
        with self.session_factory() as session:
            job = claim_job(session=session, worker=self.worker, now=now or _utcnow())
            session.commit()
            if job is None:
                return None
            job_id, attempts = job.id, job.attempts
        return self.run_claimed(job_id, attempts)

    def run_claimed(self, job_id: int, attempts: int) -> JobOutcome | None:
        """Run a job this worker claimed; record success or failure (never raises for the job)."""
        try:
            outcome = self._run(job_id)
        except Exception as exc:  # the edge: any failure becomes the job's reason
            self._failed(job_id, attempts, exc)
            return None
        if self.on_results is not None and outcome.result_ids:
            self.on_results()
        return outcome

    def _failed(self, job_id: int, attempts: int, exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        now = _utcnow()
        permanent = isinstance(exc, PermanentJobError)
        retry_at = None
        if not permanent and attempts < self.policy.max_attempts:
            retry_at = now + timedelta(seconds=self.policy.retry_delay(attempts))
        with self.session_factory() as session:
            try:
                state = fail_job(session=session, job_id=job_id, error=reason[:2000], now=now, retry_at=retry_at)
                session.commit()
            except StorageError as lost:
                logger.warning("job %d failed but is no longer ours (%s)", job_id, lost)
                return
        log = logger.error if state is JobState.DEAD else logger.warning
        log("job %d %s (attempt %d): %s", job_id, state.value, attempts, reason,
            exc_info=not permanent and not isinstance(exc, JobError))

    def _inputs(self, job: Job, session: Session) -> tuple[str, dict[str, list[str]]]:
        study = study_by_id(session=session, study_id=job.study_id)
        if study is None:
            raise PermanentJobError(f"study {job.study_id} is gone")
        decision = study.routing or {}
        roles: dict[str, str | None] = {}
        for item in decision.get("routed", []):
            if item.get("pipeline") == job.pipeline:
                roles = dict(item.get("roles", {}))
                break
        if not roles:
            raise PermanentJobError(f"the study's routing decision names no series for {job.pipeline}")
        series = _series_of_study(session, self.store, study.study_instance_uid)
        paths: dict[str, list[str]] = {}
        for role, uid in roles.items():
            if uid is None:
                continue
            if uid not in series:
                raise PermanentJobError(f"series {uid} ({role}) is no longer in the store")
            paths[role] = [str(self.store.path(p)) for p in series[uid]]
        return study.study_instance_uid, paths

    def _infer(self, pipeline: str, paths: dict[str, list[str]]) -> tuple[Any, list[Any]]:
        from inference.volume import load_volumes

        runner = self.pipelines.get(pipeline)
        if pipeline == "ldh":
            axial = load_volumes(paths["axial"])
            sagittal = load_volumes(paths["sagittal"])[0] if paths.get("sagittal") else None
            with self.pipelines.device_lock(pipeline):
                return runner(axial, sagittal), axial
        t1 = load_volumes(paths["t1"])[0]
        stir = load_volumes(paths["stir"])[0] if paths.get("stir") else None
        with self.pipelines.device_lock(pipeline):
            return runner(t1, stir), [t1]

    def _run(self, job_id: int) -> JobOutcome:
        from dicom_node.results import ResultOptions, encode_ldh, encode_sij

        with self.session_factory() as session:
            job = get_job(session=session, job_id=job_id)
            if job is None:
                raise PermanentJobError(f"job {job_id} is gone")
            pipeline, study_id = job.pipeline, job.study_id
            study_uid, paths = self._inputs(job, session)
        extra = {"study_uid": study_uid, "job_id": job_id, "pipeline": pipeline}
        logger.info("job %d: running %s", job_id, pipeline, extra=extra)
        result, sources = self._infer(pipeline, paths)
        options = ResultOptions.from_settings(self.settings.results)
        encoded = (encode_ldh if pipeline == "ldh" else encode_sij)(result, sources, options)
        objects = _encode(encoded.datasets)
        written = []
        for ds, data in objects:  # durable files first, rows after
            rel = result_relpath(study_uid, str(ds.SOPInstanceUID))
            target = self.store.path(rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, data)
            written.append((ds, rel, data))
        now = _utcnow()
        outcome = JobOutcome(job_id, study_uid, pipeline, encoded.summary)
        with self.session_factory() as session:
            for ds, rel, data in written:
                row = add_result(
                    session=session, job_id=job_id, sop_instance_uid=str(ds.SOPInstanceUID),
                    sop_class_uid=str(ds.SOPClassUID),
                    kind=_kind(ds),
                    path=rel, sha256=hashlib.sha256(data).hexdigest(), now=now,
                )
                outcome.result_ids.append(row.id)
            enqueue_results(session=session, result_ids=outcome.result_ids,
                            destinations=self.settings.destinations, now=now)
            finish_job(session=session, job_id=job_id, now=now)
            session.commit()
        logger.info("job %d: %s done, %d object(s): %s", job_id, pipeline, len(written), encoded.summary,
                    extra={**extra, "study_id": study_id})
        return outcome


def job_state(session_factory: sessionmaker[Session], job_id: int) -> JobState | None:
    """The state of one job (for tests and the Celery task)."""
    with session_factory() as session:
        job = get_job(session=session, job_id=job_id)
        return job.state if job is not None else None
