"""``dicom-node status``: studies, series, instance counts, completion and routing state."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from typing import Any

from dicom_node.cli import settings_from_args

__all__ = ["register", "routing_view"]


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


def _when(text: Any) -> datetime | None:
    if not text:
        return None
    when = datetime.fromisoformat(str(text))
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _series_label(decision: Mapping[str, Any], uid: str) -> dict[str, Any]:
    info = (decision.get("series") or {}).get(uid) or {}
    number = info.get("series_number")
    return {
        "series_instance_uid": uid,
        "series_number": int(number) if isinstance(number, (int, float)) else None,
        "description": info.get("description") or "",
    }


def _job_text(job: Mapping[str, Any] | None) -> str:
    if job is None:
        return "no job"
    text = f"job #{job['id']} {job['state']}"
    if job["state"] in ("failed", "dead") and job.get("error"):
        text += f" after {job.get('attempts')} attempt(s): {job['error']}"
    return text


def routing_view(
    study: Mapping[str, Any], *, forced_timeout_seconds: float, now: datetime | None = None
) -> dict[str, Any]:
    """What became of a study's routing, for ``status`` (one entry of ``study_summaries``).

    Parameters
    ----------
    study
        A dict of :func:`storage.repo.study_summaries` (with ``routing`` and ``jobs``).
    forced_timeout_seconds
        ``assembly.forced_timeout_seconds``: a study missing a required series is
        shown as *waiting* for that long after its last instance, then *skipped*.
    now
        The clock (UTC); default now.

    Returns
    -------
    dict
        ``state``: ``receiving`` (not complete yet), ``pending`` (complete, not
        routed yet), ``routed``, ``waiting`` (a required series is missing; a
        series arriving later amends the study and routes it again), ``skipped``
        (still missing after the forced timeout, or the study was forced),
        ``unrouted`` (no rule matched: not an error); ``lines``: one line per
        rule that matched something (or the one reason); ``rules``: per rule
        ``rule``, ``pipeline``, ``status`` (``routed`` | ``waiting`` |
        ``skipped``), ``roles`` (role -> series or ``None``), ``missing``,
        ``job``; ``reasons``: the router's reasons; ``amendment``: the amendment
        decided for; ``stale``: the decision is for an earlier amendment
        (re-routed once the study is complete again).
    """
    now = now or datetime.now(timezone.utc)
    decision = study.get("routing")
    state = str(study.get("state"))
    if not decision:
        if state == "complete":
            return {"state": "pending", "lines": ["complete, not routed yet (the next executor pass routes it)"],
                    "rules": [], "reasons": [], "amendment": None, "stale": False}
        return {"state": "receiving", "lines": ["still receiving: routed once the study is complete"],
                "rules": [], "reasons": [], "amendment": None, "stale": False}

    jobs = {int(j["id"]): j for j in study.get("jobs") or []}
    job_ids = decision.get("jobs") or {}
    last = _when(study.get("last_received_at"))
    timed_out = bool(study.get("forced")) or (
        last is not None and now >= last + timedelta(seconds=forced_timeout_seconds)
    )
    rules: list[dict[str, Any]] = []
    lines: list[str] = []
    for item in decision.get("routed") or []:
        roles = {
            role: (_series_label(decision, uid) if uid else None)
            for role, uid in (item.get("roles") or {}).items()
        }
        job_id = job_ids.get(item.get("pipeline"))
        job = jobs.get(int(job_id)) if job_id is not None else None
        rules.append({"rule": item.get("rule"), "pipeline": item.get("pipeline"), "status": "routed",
                      "roles": roles, "missing": [], "job": job})
        filled = ", ".join(
            f'{role} <- #{s["series_number"] if s["series_number"] is not None else "-"} "{s["description"]}"'
            if s else f"{role}: none (optional)"
            for role, s in roles.items()
        )
        lines.append(f"routed: rule {item.get('rule')} -> {item.get('pipeline')}: {filled}; {_job_text(job)}")
    for item in decision.get("incomplete") or []:
        missing = [str(m) for m in item.get("missing") or []]
        status = "skipped" if timed_out else "waiting"
        rules.append({"rule": item.get("rule"), "pipeline": item.get("pipeline"), "status": status,
                      "roles": {}, "missing": missing, "job": None})
        what = f"required series missing: {', '.join(missing)} (rule {item.get('rule')} -> {item.get('pipeline')})"
        if timed_out:
            lines.append(f"skipped: {what}")
        else:
            until = (last + timedelta(seconds=forced_timeout_seconds)).isoformat() if last else "?"
            lines.append(f"waiting for required series: {what}; skipped after {until}")
    if rules and any(r["status"] == "routed" for r in rules):
        overall = "routed"
    elif rules:
        overall = "skipped" if timed_out else "waiting"
    else:
        overall = "unrouted"
        lines.append("no rule matched: nothing to run")
    amendment = decision.get("amendment")
    stale = state != "complete" or amendment != study.get("amendment")
    if stale:
        lines.insert(0, f"amendment {study.get('amendment')} not routed yet (routed once complete); "
                        f"the decision below is for amendment {amendment}")
    return {"state": overall, "lines": lines, "rules": rules, "reasons": list(decision.get("reasons") or []),
            "amendment": amendment, "stale": stale}


def _run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    from storage import repo
    from storage.db import open_database

    with open_database(settings.resolved_database_url) as sessions, sessions() as session:
        studies = _jsonable(repo.study_summaries(session=session))
    now = datetime.now(timezone.utc)
    for study in studies:
        # the raw decision (with every series' classification) is `dicom-node jobs --routing --json`
        study["routing"] = routing_view(
            study, forced_timeout_seconds=settings.assembly.forced_timeout_seconds, now=now
        )
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
        view = study["routing"]
        for line in view["lines"]:
            print(f"    routing: {line}")
        if args.verbose:
            for reason in view["reasons"]:
                print(f"      why: {reason}")
        for series in study.get("series", []):
            print(
                f"    {series.get('series_instance_uid')}  {series.get('modality') or '-':<3} "
                f"#{series.get('series_number') if series.get('series_number') is not None else '-'}  "
                f"{series.get('instance_count')} instances  {series.get('series_description') or ''}"
            )
    return 0


def register(sub: Any) -> None:
    """Add the ``status`` sub-command."""
    parser = sub.add_parser("status", help="studies received, their series, completion and routing state")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("-v", "--verbose", action="store_true", help="also print the router's reasons")
    parser.set_defaults(func=_run)
