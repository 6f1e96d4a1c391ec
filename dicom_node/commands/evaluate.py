"""``dicom-node evaluate {ldh,sij,levels}``: print the source study's metrics for a labelled set."""

from __future__ import annotations

from typing import Any

from dicom_node.commands._targets import register_targets


def register(sub: Any) -> None:
    register_targets(sub, "evaluate", "evaluate a model (or a second rater) against reference labels")
