"""Exceptions of the imaging core: what a reader found wrong, and which assumption failed.

Every reader in :mod:`inference` raises one of these (``from`` the underlying
cause where there is one), so that callers can translate them at the edge
(a job failing with its reason) without catching unrelated errors.
"""

from __future__ import annotations

__all__ = [
    "DuplicateSliceError",
    "EmptyVolumeError",
    "InconsistentGeometryError",
    "IrregularSpacingError",
    "MissingAttributeError",
    "MissingSliceError",
    "PixelDataError",
    "UnsupportedPhotometricError",
    "VolumeError",
]


class VolumeError(Exception):
    """A series could not be turned into a volume; the message says which assumption failed."""


class MissingAttributeError(VolumeError):
    """A required attribute (geometry, pixel description, UIDs) is absent or malformed."""


class InconsistentGeometryError(VolumeError):
    """Slices meant to form one stack disagree (sizes, spacing, orientation, shear)."""


class IrregularSpacingError(InconsistentGeometryError):
    """Distances between consecutive slices along the normal are not all the same."""


class MissingSliceError(IrregularSpacingError):
    """A gap of a whole number of slice spacings: one or more slices were not received."""


class DuplicateSliceError(InconsistentGeometryError):
    """Two slices of one stack sit at the same position and nothing tells them apart."""


class PixelDataError(VolumeError):
    """Pixel data is absent, cannot be decoded, or cannot be interpreted."""


class UnsupportedPhotometricError(PixelDataError):
    """Photometric interpretation or samples per pixel other than one grey channel."""


class EmptyVolumeError(PixelDataError):
    """The volume decodes to nothing but zeros."""
