"""``dicom-node serve``: run the node (SCP, study assembly) until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
from typing import Any

from dicom_node.cli import settings_from_args
from dicom_node.logs import configure_logging


def _run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    configure_logging(
        level=args.log_level or settings.log_level,
        json_format=bool(args.log_json or settings.log_json),
    )
    from dicom_node.server import serve  # heavy imports only for this command

    return serve(settings)


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "serve", help="run the DICOM node (C-ECHO/C-STORE SCP, study assembly)",
        description="Run the node until SIGTERM or SIGINT; in-flight stores finish first.",
    )
    parser.set_defaults(func=_run)
