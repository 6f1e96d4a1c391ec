"""What ``serve`` needs of an executor: a study-complete subscriber, start and stop."""

from __future__ import annotations

import abc

from dicom_node.assembly import StudyCompleted

__all__ = ["Executor"]


class Executor(abc.ABC):
    """Routes completed studies into jobs and gets the jobs run."""

    @abc.abstractmethod
    def on_study_complete(self, event: StudyCompleted) -> None:
        """Subscriber of :class:`~dicom_node.assembly.StudyAssembler` (idempotent)."""

    @abc.abstractmethod
    def start(self) -> None:
        """Start running jobs."""

    @abc.abstractmethod
    def stop(self, timeout: float | None = 60.0) -> None:
        """Stop, letting a running job finish when possible."""
