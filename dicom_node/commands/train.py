"""``dicom-node train {ldh,sij,levels}``: train a model from phantoms or a site's data.

Each target lives in a private module ``dicom_node.commands._<target>`` with
``add_train_arguments(parser)`` and ``run_train(args) -> int``.
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


def _run(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"dicom_node.commands._{args.target}")
    return int(module.run_train(args))


def register(sub: Any) -> None:
    parser = sub.add_parser("train", help="train a model (phantoms or your own labelled data)")
    targets = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    for name, help_text in TARGETS.items():
        module = importlib.import_module(f"dicom_node.commands._{name}")
        target = targets.add_parser(name, help=help_text)
        module.add_train_arguments(target)
        target.set_defaults(func=_run)
