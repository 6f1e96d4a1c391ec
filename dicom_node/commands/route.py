"""``dicom-node route --dry-run DIR``: which series would go to which pipeline, and why.

Reads the headers of every DICOM file under DIR, groups them by study and series,
applies the routing rules of the configuration (the built-in defaults when it has
none) and prints the decision with its reasons. Runs nothing, writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dicom_node.cli import settings_from_args

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    if not args.dry_run:
        print("route: only --dry-run is supported (a running node routes studies itself)", file=sys.stderr)
        return 2
    from pathlib import Path

    from dicom_node.routing import RoutingError, parse_rules, route_study, series_infos
    from inference.volume import load_series_headers

    settings = settings_from_args(args)
    try:
        rules = parse_rules(settings.routing, priorities=settings.jobs.priorities)
    except RoutingError as exc:
        print(f"route: {exc}", file=sys.stderr)
        return 2
    folder = Path(args.folder)
    if not folder.is_dir():
        print(f"route: {folder} is not a folder", file=sys.stderr)
        return 2
    studies: dict[str, dict[str, Any]] = {}
    for series_uid, headers in load_series_headers(folder).items():
        study = str(headers[0].dataset.get("StudyInstanceUID", ""))
        studies.setdefault(study, {})[series_uid] = headers
    if not studies:
        print(f"route: no DICOM files under {folder}", file=sys.stderr)
        return 2
    report = {}
    for study_uid, series in sorted(studies.items()):
        report[study_uid] = route_study(series_infos(series), rules).as_dict()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for study_uid, decision in report.items():
        print(f"study {study_uid}: {decision['outcome']}")
        for item in decision["routed"]:
            roles = ", ".join(f"{role}={uid or '-'}" for role, uid in item["roles"].items())
            print(f"  -> {item['pipeline']} (rule {item['rule']}): {roles}")
        for item in decision["incomplete"]:
            print(f"  -- {item['pipeline']} (rule {item['rule']}) skipped: missing {', '.join(item['missing'])}")
        print("  reasons:")
        for reason in decision["reasons"]:
            print(f"    {reason}")
        if args.verbose:
            print("  series:")
            for uid, info in decision["series"].items():
                cls = info["class"]
                summary = cls.get("error") or (
                    f"{cls['plane']} {cls['weighting']}{' FS' if cls['fat_suppressed'] else ''} {cls['region']}"
                    f"{' localizer' if cls['is_localizer'] else ''}"
                )
                print(f"    {uid} {info['modality']} #{info['series_number']} {info['description']!r}: {summary}")
                for why in cls.get("reasons", []):
                    print(f"        {why}")
    return 0


def register(sub: Any) -> None:
    """Add the ``route`` sub-command."""
    parser = sub.add_parser("route", help="show which series would go to which pipeline, and why")
    parser.add_argument("folder", help="folder of DICOM files (walked recursively)")
    parser.add_argument("--dry-run", action="store_true", help="only show the decision (required)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("-v", "--verbose", action="store_true", help="also show how each series was classified")
    parser.set_defaults(func=_run)
