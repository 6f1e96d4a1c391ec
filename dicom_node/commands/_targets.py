"""Shared registration of ``train`` and ``evaluate``: one private module per target.

Each target lives in ``dicom_node.commands._<target>`` with
``add_train_arguments`` / ``run_train`` and ``add_evaluate_arguments`` / ``run_evaluate``.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

TARGETS = {
    "ldh": "lumbar disc herniation segmentation (axial T2, MSU)",
    "levels": "disc-level segmentation on sagittal T2",
    "sij": "SIJ fat-metaplasia segmentation, then the axSpA classifier",
}


def register_targets(sub: Any, command: str, help_text: str) -> None:
    """Add ``command`` with one sub-parser per target (``command`` is train or evaluate)."""

    def run(args: argparse.Namespace) -> int:
        module = importlib.import_module(f"dicom_node.commands._{args.target}")
        return int(getattr(module, f"run_{command}")(args))

    parser = sub.add_parser(command, help=help_text)
    targets = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    for name, target_help in TARGETS.items():
        module = importlib.import_module(f"dicom_node.commands._{name}")
        target = targets.add_parser(name, help=target_help)
        getattr(module, f"add_{command}_arguments")(target)
        target.set_defaults(func=run)
