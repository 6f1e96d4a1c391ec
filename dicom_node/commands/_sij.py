"""``dicom-node train sij`` and ``dicom-node evaluate sij`` (placeholder until the pipeline lands)."""

from __future__ import annotations

import argparse
import sys


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run_train(args: argparse.Namespace) -> int:
    print("dicom-node train sij: not implemented yet", file=sys.stderr)
    return 2


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run_evaluate(args: argparse.Namespace) -> int:
    print("dicom-node evaluate sij: not implemented yet", file=sys.stderr)
    return 2
