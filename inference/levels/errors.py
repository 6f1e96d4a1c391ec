"""Exceptions of the disc-level finder."""

from __future__ import annotations

__all__ = ["LevelsError", "LevelsDataError", "LevelsModelError"]


class LevelsError(Exception):
    """Disc levels could not be found or assigned; the message says why."""


class LevelsModelError(LevelsError):
    """The level network cannot be built or its weights cannot be loaded."""


class LevelsDataError(LevelsError):
    """Training or evaluation data is missing or malformed."""
