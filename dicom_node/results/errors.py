"""Exceptions of the result encoders (SEG, SR, summary)."""

from __future__ import annotations

__all__ = ["ResultsError", "ResultsInputError", "ResultsEncodingError"]


class ResultsError(Exception):
    """Base class of everything the result encoders raise."""


class ResultsInputError(ResultsError):
    """The result object or the source images do not fit together (missing source frame, shape mismatch)."""


class ResultsEncodingError(ResultsError):
    """highdicom or pydicom refused to build a valid object from otherwise consistent input."""
