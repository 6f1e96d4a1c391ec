"""The ``dicom-node`` command line.

Each sub-command lives in its own module under :mod:`dicom_node.commands` and
exposes ``register(subparsers)``, which adds its parser and sets
``func=<callable(args) -> int>``. Modules are discovered, so a new command is a
new file. Settings are built here, once, and passed down.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence
from typing import Any

from config.settings import ConfigError, Settings, load_settings
from dicom_node import __version__, commands
from dicom_node.logs import configure_logging

__all__ = ["build_parser", "main", "settings_from_args"]


def settings_from_args(args: argparse.Namespace, **overrides: Any) -> Settings:
    """Load the settings named by ``--config`` (or ``DICOM_NODE_CONFIG``)."""
    return load_settings(getattr(args, "config", None), **overrides)


def _command_modules() -> list[str]:
    return sorted(
        info.name for info in pkgutil.iter_modules(commands.__path__)
        if not info.name.startswith("_")
    )


def _requested_command(argv: Sequence[str]) -> str | None:
    """The sub-command named on the command line, if any (global options skipped)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    pre.add_argument("--log-level")
    pre.add_argument("--log-json", action="store_true")
    _, rest = pre.parse_known_args(list(argv))
    return rest[0] if rest and not rest[0].startswith("-") else None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or only ``command``'s part of it.

    Registering a command can be costly (``train`` imports torch and MONAI to
    declare its options), so ``main`` registers only the command it runs; help
    without a command lists them all.
    """
    parser = argparse.ArgumentParser(
        prog="dicom-node",
        description=(
            "AI DICOM node for spine MRI (research use only; the bundled "
            "weights are trained on synthetic data)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"dicom-node {__version__}")
    parser.add_argument(
        "--config", metavar="FILE", default=None,
        help="YAML configuration file (default: $DICOM_NODE_CONFIG, else built-in defaults)",
    )
    parser.add_argument(
        "--log-level", default=None, choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level (default: the config's log_level)",
    )
    parser.add_argument("--log-json", action="store_true", help="log one JSON object per line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    names = _command_modules()
    if command in names:
        names = [command]
    for name in names:
        module = importlib.import_module(f"{commands.__name__}.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dicom-node`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_requested_command(argv))
    args = parser.parse_args(argv)
    configure_logging(level=args.log_level or "INFO", json_format=args.log_json)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        for line in exc.problems:
            print(f"config error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
