"""Label values shared by the phantoms, the networks, the pipelines and the encoders.

These numbers are a contract: phantom ground truth is written with them, the
networks are trained on them, and the SEG encoder maps them to segments.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["AxialLabel", "DISC_LEVELS", "SagittalLabel", "SijLabel"]


class AxialLabel(IntEnum):
    """Classes of the axial lumbar T2 segmentation (what the MSU geometry needs)."""

    BACKGROUND = 0
    DISC = 1  #: non-herniated disc (nucleus and annulus)
    HERNIATION = 2  #: disc material beyond the posterior margin of the parent disc
    DURAL_SAC = 3  #: thecal sac with CSF
    FACET_LEFT = 4  #: the patient's left facet joint (articular processes)
    FACET_RIGHT = 5
    VERTEBRA = 6  #: vertebral body and posterior elements other than the facets


class SagittalLabel(IntEnum):
    """Classes of the sagittal segmentation used to find and count disc levels.

    The same three classes as the SPIDER masks (disc 29, vertebra 76, canal 150).
    """

    BACKGROUND = 0
    DISC = 1
    VERTEBRA = 2  #: bodies and posterior elements, sacrum included
    CANAL = 3


class SijLabel(IntEnum):
    """Classes of the semi-coronal SIJ segmentation."""

    BACKGROUND = 0
    FAT_METAPLASIA = 1
    SACRUM = 2
    ILIUM_LEFT = 3
    ILIUM_RIGHT = 4
    OEDEMA = 5  #: bone-marrow oedema (STIR)


#: Disc levels from cranial to caudal, as written in reports and ground truth.
DISC_LEVELS: tuple[str, ...] = ("T12/L1", "L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1")
