"""Who made an output and what it is called: UIDs, series numbers, equipment.

Outputs go into the source study. Their Series and SOP Instance UIDs are derived
(UUID v5 under the ``2.25`` root, PS3.5 B.2) from the source study, the
pipeline, the model (name, version, weights checksum), the object kind and its
index, so that re-running the same model on the same study yields the same
UIDs (a PACS replaces the old objects) while a new model version yields new
ones. Series Numbers are fixed per pipeline and object kind.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from dicom_node import __version__

__all__ = [
    "MANUFACTURER",
    "ModelIdentity",
    "ObjectKind",
    "SERIES_NUMBERS",
    "derive_uid",
    "series_number",
    "series_uid",
    "instance_uid",
    "stack_series_uid",
    "stack_instance_uid",
]

logger = logging.getLogger(__name__)

#: Namespace of every derived UID (a fixed random UUID; never change it).
UID_NAMESPACE = uuid.UUID("6f1f0c55-2d0b-4a3e-9b7e-3c1d0a9e5d41")
MANUFACTURER = "dicom-node"
MODEL_NAME = "dicom-node"
SOFTWARE_VERSION = __version__
DEVICE_SERIAL_NUMBER = "dicom-node"

#: Object kinds an encoder writes.
ObjectKind = str
SEG, SR, PDF, SC = "seg", "sr", "pdf", "sc"

#: Series Number base of each pipeline; the object kind adds its offset.
PIPELINE_SERIES_BASE: dict[str, int] = {"ldh": 9000, "sij": 9010}
KIND_OFFSET: dict[str, int] = {SEG: 1, SR: 2, PDF: 3, SC: 4}
SERIES_NUMBERS: dict[tuple[str, str], int] = {
    (p, k): base + off for p, base in PIPELINE_SERIES_BASE.items() for k, off in KIND_OFFSET.items()
}


@dataclass(frozen=True)
class ModelIdentity:
    """What every output says about the algorithm that made it.

    Attributes
    ----------
    name, version
        From the model card.
    sha256
        Hex checksum of the weights (``None`` for a stub or untrained network).
    notice
        Research-use notice (or the card's intended use).
    """

    name: str
    version: str
    sha256: str | None
    notice: str

    @property
    def checksum_text(self) -> str:
        """``sha256:<first 16 hex>`` or ``"no weights checksum"``."""
        return f"sha256:{self.sha256[:16]}" if self.sha256 else "no weights checksum"

    @property
    def label(self) -> str:
        """``"<name> <version> (sha256:...)"``, for descriptions."""
        return f"{self.name} {self.version} ({self.checksum_text})"


def derive_uid(*parts: object) -> str:
    """A UID under ``2.25`` derived from ``parts`` (same parts, same UID).

    Returns
    -------
    str
        ``2.25.<decimal of a UUID v5>``, at most 44 characters.
    """
    name = "\x1f".join(str(p) for p in parts)
    return f"2.25.{uuid.uuid5(UID_NAMESPACE, name).int}"


def _key(study_uid: str, pipeline: str, model: ModelIdentity) -> tuple[str, ...]:
    return (study_uid, pipeline, model.name, model.version, model.sha256 or "")


def series_uid(study_uid: str, pipeline: str, model: ModelIdentity, kind: ObjectKind) -> str:
    """Series Instance UID of the ``kind`` output of ``pipeline`` on ``study_uid``."""
    return derive_uid("series", *_key(study_uid, pipeline, model), kind)


def instance_uid(study_uid: str, pipeline: str, model: ModelIdentity, kind: ObjectKind, index: int = 0) -> str:
    """SOP Instance UID of object ``index`` of the ``kind`` series."""
    return derive_uid("instance", *_key(study_uid, pipeline, model), kind, index)


def stack_series_uid(study_uid: str, pipeline: str, model: ModelIdentity, kind: ObjectKind, stack: int) -> str:
    """Series Instance UID of the ``kind`` output of source stack ``stack`` (one series per stack).

    Used for the lumbar SEG: OHIF 3.13.2 shows only the last instance of a SEG series, so
    each angled axial stack's SEG is a series of its own (docs/results.md, "Viewers"). The
    derivation differs from :func:`series_uid` (``"stack"`` and the index are part of it).
    """
    return derive_uid("series", *_key(study_uid, pipeline, model), kind, "stack", stack)


def stack_instance_uid(study_uid: str, pipeline: str, model: ModelIdentity, kind: ObjectKind, stack: int) -> str:
    """SOP Instance UID of the ``kind`` output of source stack ``stack``.

    Derived apart from :func:`instance_uid`, so that an instance never changes series:
    results written when all stacks shared one SEG series keep UIDs of their own.
    """
    return derive_uid("instance", *_key(study_uid, pipeline, model), kind, "stack", stack)


def series_number(pipeline: str, kind: ObjectKind) -> int:
    """The fixed Series Number of ``kind`` outputs of ``pipeline`` (e.g. 9001 for the lumbar SEG)."""
    return SERIES_NUMBERS[(pipeline, kind)]
