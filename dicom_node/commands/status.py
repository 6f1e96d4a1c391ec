"""``dicom-node status``: studies, series, instance counts and completion state."""

from __future__ import annotations

import argparse
import json
from datetime import date, datetime
from typing import Any

from dicom_node.cli import settings_from_args


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "value") and not isinstance(value, (str, int, float, bool)):
        return value.value  # enums
    return value


def _run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    from storage import repo
    from storage.db import make_engine, make_session_factory, upgrade

    engine = make_engine(settings.resolved_database_url)
    try:
        upgrade(engine)
        with make_session_factory(engine)() as session:
            studies = _jsonable(repo.study_summaries(session=session))
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps({"studies": studies}, indent=2))
        return 0
    if not studies:
        print("no studies")
        return 0
    for study in studies:
        flags = []
        if study.get("forced"):
            flags.append("forced")
        if study.get("amendment"):
            flags.append(f"amendment {study['amendment']}")
        print(
            f"{study.get('study_instance_uid')}  {study.get('state')}"
            f"{' (' + ', '.join(flags) + ')' if flags else ''}  "
            f"last received {study.get('last_received_at')}"
        )
        for series in study.get("series", []):
            print(
                f"    {series.get('series_instance_uid')}  {series.get('modality') or '-':<3} "
                f"#{series.get('series_number') if series.get('series_number') is not None else '-'}  "
                f"{series.get('instance_count')} instances  {series.get('series_description') or ''}"
            )
    return 0


def register(sub: Any) -> None:
    parser = sub.add_parser("status", help="studies received, their series and completion state")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=_run)
