"""Exceptions of the lumbar pipeline, raised ``from`` their cause."""

from __future__ import annotations

__all__ = ["LdhDataError", "LdhError", "LdhInputError"]


class LdhError(Exception):
    """Something the lumbar pipeline could not do; the message says what."""


class LdhInputError(LdhError):
    """The study does not hold what the pipeline needs (no axial T2 stack, no pixels)."""


class LdhDataError(LdhError):
    """A training or evaluation set is missing files or labels, or they disagree with the images."""
