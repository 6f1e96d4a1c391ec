"""``dicom-node train {ldh,sij,levels}``: train a model from phantoms or a site's data."""

from __future__ import annotations

from typing import Any

from dicom_node.commands._targets import register_targets


def register(sub: Any) -> None:
    register_targets(sub, "train", "train a model (phantoms or your own labelled data)")
