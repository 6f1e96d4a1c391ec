"""Exceptions of the SIJ pipeline, raised ``from`` their cause."""

from __future__ import annotations

__all__ = ["SijError", "SijInputError", "SijModelError", "SijDataError"]


class SijError(Exception):
    """Base class of everything the SIJ pipeline raises on purpose."""


class SijInputError(SijError):
    """The study lacks what the pipeline needs (no semi-coronal T1, mismatched STIR, ...)."""


class SijModelError(SijError):
    """Weights or classifier parameters are missing, inconsistent or unusable."""


class SijDataError(SijError):
    """A training or evaluation case does not follow the documented layout."""
