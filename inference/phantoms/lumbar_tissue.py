"""Tissue classes of the lumbar phantom's 3D volume and their mapping to label contracts.

The 3D volume stores one :class:`Tissue` code per voxel (uint8). Contrast
(:mod:`inference.phantoms.lumbar_render`) maps tissues to T1/T2 signal; the
label tables below map them to :class:`~inference.labels.AxialLabel` and
:class:`~inference.labels.SagittalLabel`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum

import numpy as np

from inference.labels import AxialLabel, SagittalLabel

__all__ = ["N_TISSUE_CODES", "NUCLEUS_BASE", "Tissue", "axial_label_table", "sagittal_label_table"]


class Tissue(IntEnum):
    """Tissue codes of the 3D phantom volume."""

    AIR = 0
    FAT = 1  #: subcutaneous and retroperitoneal fat
    MUSCLE = 2
    VISCERA = 3
    VESSEL = 4  #: flowing blood (flow void)
    MARROW = 5  #: vertebral body marrow
    CORTEX = 6  #: cortical bone and endplates
    POSTERIOR_BONE = 7  #: pedicles, laminae, spinous and transverse processes, sacral alae
    ANNULUS = 8
    NUCLEUS = 9  #: generic nucleus (per-disc codes start at NUCLEUS_BASE)
    HERNIATION = 10
    CSF = 11
    NERVE = 12  #: cauda equina roots inside the thecal sac
    EPIDURAL_FAT = 13
    LIGAMENT = 14  #: ligamentum flavum, posterior longitudinal ligament
    FACET_BONE_LEFT = 15
    FACET_BONE_RIGHT = 16
    FACET_FLUID_LEFT = 17
    FACET_FLUID_RIGHT = 18
    CORD = 19  #: conus medullaris
    SACRAL_REMNANT = 20  #: fused remnant discs of the sacrum
    ILIUM = 21
    EXITING_ROOT = 22  #: nerve roots outside the sac (foramina, sacral canal)
    CORTEX_ILIUM = 23  #: cortical bone of the iliac wings (not spine: background label)


#: Per-disc nucleus codes are ``NUCLEUS_BASE + index`` (index in the spine's disc order).
NUCLEUS_BASE = 32
#: Size of lookup tables indexed by tissue code.
N_TISSUE_CODES = 48

_AXIAL = {
    Tissue.MARROW: AxialLabel.VERTEBRA,
    Tissue.CORTEX: AxialLabel.VERTEBRA,
    Tissue.POSTERIOR_BONE: AxialLabel.VERTEBRA,
    Tissue.SACRAL_REMNANT: AxialLabel.VERTEBRA,
    Tissue.ANNULUS: AxialLabel.DISC,
    Tissue.NUCLEUS: AxialLabel.DISC,
    Tissue.HERNIATION: AxialLabel.HERNIATION,
    Tissue.CSF: AxialLabel.DURAL_SAC,
    Tissue.NERVE: AxialLabel.DURAL_SAC,
    Tissue.CORD: AxialLabel.DURAL_SAC,
    Tissue.FACET_BONE_LEFT: AxialLabel.FACET_LEFT,
    Tissue.FACET_FLUID_LEFT: AxialLabel.FACET_LEFT,
    Tissue.FACET_BONE_RIGHT: AxialLabel.FACET_RIGHT,
    Tissue.FACET_FLUID_RIGHT: AxialLabel.FACET_RIGHT,
}

_SAGITTAL = {
    Tissue.MARROW: SagittalLabel.VERTEBRA,
    Tissue.CORTEX: SagittalLabel.VERTEBRA,
    Tissue.POSTERIOR_BONE: SagittalLabel.VERTEBRA,
    Tissue.SACRAL_REMNANT: SagittalLabel.VERTEBRA,
    Tissue.FACET_BONE_LEFT: SagittalLabel.VERTEBRA,
    Tissue.FACET_BONE_RIGHT: SagittalLabel.VERTEBRA,
    Tissue.FACET_FLUID_LEFT: SagittalLabel.VERTEBRA,
    Tissue.FACET_FLUID_RIGHT: SagittalLabel.VERTEBRA,
    Tissue.ANNULUS: SagittalLabel.DISC,
    Tissue.NUCLEUS: SagittalLabel.DISC,
    Tissue.HERNIATION: SagittalLabel.DISC,
    Tissue.CSF: SagittalLabel.CANAL,
    Tissue.NERVE: SagittalLabel.CANAL,
    Tissue.CORD: SagittalLabel.CANAL,
    Tissue.EPIDURAL_FAT: SagittalLabel.CANAL,
}


def _table(mapping: Mapping[Tissue, int]) -> np.ndarray:
    table = np.zeros(N_TISSUE_CODES, dtype=np.uint8)
    for tissue, label in mapping.items():
        table[int(tissue)] = int(label)
    nucleus = mapping.get(Tissue.NUCLEUS)
    if nucleus is not None:
        table[NUCLEUS_BASE:] = int(nucleus)
    return table


def axial_label_table() -> np.ndarray:
    """Lookup table tissue code -> :class:`~inference.labels.AxialLabel` value."""
    return _table(_AXIAL)


def sagittal_label_table() -> np.ndarray:
    """Lookup table tissue code -> :class:`~inference.labels.SagittalLabel` value."""
    return _table(_SAGITTAL)
