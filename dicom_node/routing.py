"""Routing: which series of a study go to which pipeline, in which role, and why.

A routing rule (``settings.routing``, a list of mappings in the YAML) names a
pipeline and the series *roles* it fills; each role has a ``match`` expression and
``required`` (default true)::

    - name: lumbar
      pipeline: ldh
      roles:
        axial:    {match: {all: [{field: class.plane, equals: axial},
                                 {field: class.weighting, equals: T2},
                                 {field: class.region, equals: lumbar_spine}]}}
        sagittal: {required: false,
                   match: {all: [{field: class.plane, equals: sagittal},
                                 {field: SeriesDescription, regex: "t2"}]}}

Expressions: ``{all: [...]}``, ``{any: [...]}``, ``{not: expr}`` and leaves
``{field: NAME, OP: VALUE}``. ``NAME`` is a DICOM keyword of the series' first
header (``SeriesDescription``, ``EchoTime``, ``Modality`` ...) or a field of the
series classifier (``class.plane``, ``class.weighting``, ``class.region``,
``class.fat_suppressed``, ``class.is_localizer``). ``OP`` is one of ``equals``
(case-insensitive for text), ``in`` (a list), ``regex`` (searched,
case-insensitive), ``range`` (``[low, high]``, either may be null; numeric) and
``present`` (true/false). A leaf may hold several operators: all must hold.

A rule may carry ``priority`` (an integer; default ``jobs.priorities`` of its
pipeline, else 0): its jobs are claimed before those of lower priority. Per role
the candidate with the most instances wins (then the lowest Series Number); a
series fills at most one role of a rule. A rule whose required roles are all
filled is *routed*; one with some role filled but a required role empty is
*incomplete* (nothing runs; ``status`` shows the study waiting for the series,
then skipped after the forced timeout; a late series re-routes it); a study no
rule touches is *unrouted* (not an error). When ``settings.routing`` is empty the
built-in :data:`DEFAULT_RULES` apply: they rely on the classifier, which reads
geometry, sequence tags and the usual Siemens/GE/Philips descriptions.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset

from inference.series_classifier import SeriesClass, classify_series

__all__ = [
    "DEFAULT_RULES",
    "RoleSpec",
    "RouteDecision",
    "RoutingError",
    "Rule",
    "SeriesInfo",
    "parse_rules",
    "matches",
    "route_study",
    "series_infos",
]

logger = logging.getLogger(__name__)

_OPS = ("equals", "in", "regex", "range", "present")
_CLASS_FIELDS = ("plane", "weighting", "region", "fat_suppressed", "is_localizer")


class RoutingError(ValueError):
    """A routing rule that cannot be used (names the rule and the problem)."""


def _is(field_name: str, value: Any) -> dict[str, Any]:
    return {"field": field_name, "equals": value}


_NOT_LOCALIZER = {"not": _is("class.is_localizer", True)}
_MR = _is("Modality", "MR")

#: The built-in rules (used when ``settings.routing`` is empty).
DEFAULT_RULES: list[dict[str, Any]] = [
    {
        "name": "lumbar",
        "pipeline": "ldh",
        "roles": {
            "axial": {"required": True, "match": {"all": [
                _MR, _NOT_LOCALIZER, _is("class.plane", "axial"), _is("class.weighting", "T2"),
                _is("class.region", "lumbar_spine"), _is("class.fat_suppressed", False),
            ]}},
            "sagittal": {"required": False, "match": {"all": [
                _MR, _NOT_LOCALIZER, _is("class.plane", "sagittal"), _is("class.weighting", "T2"),
                _is("class.region", "lumbar_spine"), _is("class.fat_suppressed", False),
            ]}},
        },
    },
    {
        "name": "sij",
        "pipeline": "sij",
        "roles": {
            "t1": {"required": True, "match": {"all": [
                _MR, _NOT_LOCALIZER, _is("class.plane", "coronal"), _is("class.weighting", "T1"),
                _is("class.region", "sacroiliac_joints"), _is("class.fat_suppressed", False),
            ]}},
            "stir": {"required": False, "match": {"all": [
                _MR, _NOT_LOCALIZER, _is("class.plane", "coronal"), _is("class.weighting", "STIR"),
                _is("class.region", "sacroiliac_joints"),
            ]}},
        },
    },
]


@dataclass(frozen=True)
class RoleSpec:
    """One series role of a rule."""

    name: str
    match: Mapping[str, Any]
    required: bool = True


@dataclass(frozen=True)
class Rule:
    """A validated routing rule."""

    name: str
    pipeline: str
    roles: tuple[RoleSpec, ...]
    #: jobs of this rule are claimed before those of lower priority (default 0)
    priority: int = 0


@dataclass
class SeriesInfo:
    """What routing knows of one series: a representative header and its size."""

    series_uid: str
    header: Dataset
    instance_count: int
    classification: SeriesClass | None = None

    @property
    def series_class(self) -> SeriesClass:
        """The classifier's answer (computed once)."""
        if self.classification is None:
            self.classification = classify_series(self.header)
        return self.classification

    def describe(self) -> str:
        """``#3 "t2_tse_tra" (axial T2 lumbar_spine, 45 instances)``."""
        number = self.header.get("SeriesNumber", "")
        desc = str(self.header.get("SeriesDescription", "") or "")
        return f'#{number} "{desc}" ({self.series_class}, {self.instance_count} instances)'


@dataclass
class RouteDecision:
    """The decision for one study, JSON-ready via :meth:`as_dict`.

    ``routed``: ``{"rule", "pipeline", "roles": {role: series_uid | None}}`` per
    rule whose required roles are filled; ``incomplete``: ``{"rule",
    "pipeline", "missing": [roles]}``; ``reasons``: one line per decision.
    """

    routed: list[dict[str, Any]] = field(default_factory=list)
    incomplete: list[dict[str, Any]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    series: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        """``routed``, ``incomplete`` (a required series missing) or ``unrouted``."""
        if self.routed:
            return "routed"
        return "incomplete" if self.incomplete else "unrouted"

    def pipelines(self) -> list[str]:
        """The pipelines to run, in rule order, each once."""
        seen: list[str] = []
        for item in self.routed:
            if item["pipeline"] not in seen:
                seen.append(item["pipeline"])
        return seen

    def priority_of(self, pipeline: str) -> int:
        """The priority of the rule that routed ``pipeline`` (0 if none)."""
        for item in self.routed:
            if item["pipeline"] == pipeline:
                return int(item.get("priority", 0))
        return 0

    def roles_of(self, pipeline: str) -> dict[str, str | None]:
        """The roles filled for ``pipeline`` (first rule routing to it)."""
        for item in self.routed:
            if item["pipeline"] == pipeline:
                return dict(item["roles"])
        return {}

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON for ``Study.routing``, ``status`` and ``route --dry-run --json``."""
        return {
            "outcome": self.outcome,
            "routed": self.routed,
            "incomplete": self.incomplete,
            "reasons": self.reasons,
            "series": self.series,
        }


# -- rules ---------------------------------------------------------------------------


def _check_expr(expr: Any, where: str) -> None:
    if not isinstance(expr, Mapping) or not expr:
        raise RoutingError(f"{where}: an expression must be a non-empty mapping, got {expr!r}")
    if "all" in expr or "any" in expr:
        key = "all" if "all" in expr else "any"
        items = expr[key]
        if len(expr) != 1 or not isinstance(items, list) or not items:
            raise RoutingError(f"{where}: '{key}' takes a non-empty list and nothing beside it")
        for i, item in enumerate(items):
            _check_expr(item, f"{where}.{key}[{i}]")
        return
    if "not" in expr:
        if len(expr) != 1:
            raise RoutingError(f"{where}: 'not' takes one expression and nothing beside it")
        _check_expr(expr["not"], f"{where}.not")
        return
    name = expr.get("field")
    if not isinstance(name, str) or not name:
        raise RoutingError(f"{where}: a leaf needs 'field' (a DICOM keyword or class.<name>)")
    if name.startswith("class.") and name[6:] not in _CLASS_FIELDS:
        raise RoutingError(f"{where}: unknown classifier field {name!r} (one of {_CLASS_FIELDS})")
    ops = [k for k in expr if k != "field"]
    unknown = [k for k in ops if k not in _OPS]
    if unknown or not ops:
        raise RoutingError(f"{where}: operators must be among {_OPS}, got {ops}")
    if "regex" in expr:
        try:
            re.compile(str(expr["regex"]))
        except re.error as exc:
            raise RoutingError(f"{where}: bad regex {expr['regex']!r}: {exc}") from exc
    if "range" in expr:
        rng = expr["range"]
        if not isinstance(rng, list) or len(rng) != 2:
            raise RoutingError(f"{where}: 'range' takes [low, high] (null for open)")
    if "in" in expr and not isinstance(expr["in"], list):
        raise RoutingError(f"{where}: 'in' takes a list")


def parse_rules(
    raw: Sequence[Mapping[str, Any]] | None, *, priorities: Mapping[Any, int] | None = None
) -> list[Rule]:
    """Validate ``settings.routing`` (the defaults when empty) into :class:`Rule` objects.

    ``priorities`` (``settings.jobs.priorities``) gives a pipeline's priority to
    the rules that set none of their own (the built-in rules among them).

    Raises
    ------
    RoutingError
        Naming the rule and what is wrong with it.
    """
    items = list(raw) if raw else DEFAULT_RULES
    rules: list[Rule] = []
    for i, item in enumerate(items):
        name = str(item.get("name") or f"rule {i + 1}")
        where = f"routing[{i}] ({name})"
        pipeline = item.get("pipeline")
        if pipeline not in ("ldh", "sij"):
            raise RoutingError(f"{where}: pipeline must be 'ldh' or 'sij', got {pipeline!r}")
        roles_raw = item.get("roles")
        if not isinstance(roles_raw, Mapping) or not roles_raw:
            raise RoutingError(f"{where}: 'roles' must map role names to {{match, required}}")
        expected = {"ldh": {"axial", "sagittal"}, "sij": {"t1", "stir"}}[pipeline]
        unknown = set(roles_raw) - expected
        if unknown:
            raise RoutingError(f"{where}: roles of {pipeline} are {sorted(expected)}, not {sorted(unknown)}")
        roles = []
        for role, spec in roles_raw.items():
            if not isinstance(spec, Mapping) or "match" not in spec:
                raise RoutingError(f"{where}.roles.{role}: needs 'match'")
            _check_expr(spec["match"], f"{where}.roles.{role}.match")
            roles.append(RoleSpec(str(role), spec["match"], bool(spec.get("required", True))))
        extra = set(item) - {"name", "pipeline", "roles", "priority"}
        if extra:
            raise RoutingError(f"{where}: unknown keys {sorted(extra)}")
        priority = item.get("priority", (priorities or {}).get(str(pipeline), 0))
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise RoutingError(f"{where}: priority must be an integer, got {priority!r}")
        rules.append(Rule(name, str(pipeline), tuple(roles), priority))
    return rules


# -- matching ------------------------------------------------------------------------


def _value(series: SeriesInfo, name: str) -> Any:
    if name.startswith("class."):
        value = getattr(series.series_class, name[6:])
        return value.value if hasattr(value, "value") else value
    element = series.header.get(name)
    if element is None or element == "":
        return None
    if hasattr(element, "__iter__") and not isinstance(element, (str, bytes)):
        return [v for v in element]
    return element


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _leaf(series: SeriesInfo, expr: Mapping[str, Any]) -> bool:
    value = _value(series, str(expr["field"]))
    values = value if isinstance(value, list) else [value]
    for op, wanted in expr.items():
        if op == "field":
            continue
        if op == "present":
            if (value is not None) != bool(wanted):
                return False
            continue
        if value is None:
            return False
        if op == "equals" and not any(_equal(v, wanted) for v in values):
            return False
        if op == "in" and not any(_equal(v, w) for v in values for w in wanted):
            return False
        if op == "regex" and not any(re.search(str(wanted), str(v), re.IGNORECASE) for v in values):
            return False
        if op == "range":
            low, high = (_number(x) for x in wanted)
            numbers = [n for n in (_number(v) for v in values) if n is not None]
            if not any((low is None or n >= low) and (high is None or n <= high) for n in numbers):
                return False
    return True


def _equal(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, bool) or isinstance(value, bool):
        return bool(value) == bool(wanted) and isinstance(value, bool) == isinstance(wanted, bool)
    if isinstance(wanted, (int, float)):
        number = _number(value)
        return number is not None and number == float(wanted)
    return str(value).strip().lower() == str(wanted).strip().lower()


def matches(series: SeriesInfo, expr: Mapping[str, Any]) -> bool:
    """Whether ``series`` satisfies the expression ``expr``."""
    if "all" in expr:
        return all(matches(series, e) for e in expr["all"])
    if "any" in expr:
        return any(matches(series, e) for e in expr["any"])
    if "not" in expr:
        return not matches(series, expr["not"])
    return _leaf(series, expr)


def _rank(series: SeriesInfo) -> tuple[int, int]:
    number = _number(series.header.get("SeriesNumber"))
    return (-series.instance_count, int(number) if number is not None else 0)


def route_study(series: Sequence[SeriesInfo], rules: Sequence[Rule]) -> RouteDecision:
    """Apply ``rules`` to the series of one study.

    Parameters
    ----------
    series
        One :class:`SeriesInfo` per series (derived objects such as our own SEG/SR
        are matched like any other and normally fail ``Modality: MR``).
    rules
        From :func:`parse_rules`.
    """
    decision = RouteDecision()
    for info in series:
        try:
            cls = info.series_class.as_dict()
        except Exception as exc:  # a header the classifier cannot read: say so, route the rest
            cls = {"error": f"{type(exc).__name__}: {exc}"}
        decision.series[info.series_uid] = {
            "series_number": _number(info.header.get("SeriesNumber")),
            "description": str(info.header.get("SeriesDescription", "") or ""),
            "modality": str(info.header.get("Modality", "") or ""),
            "instances": info.instance_count,
            "class": cls,
        }
    routed_pipelines: set[str] = set()
    for rule in rules:
        taken: set[str] = set()
        filled: dict[str, str | None] = {}
        missing: list[str] = []
        for role in rule.roles:
            candidates = []
            for info in series:
                if info.series_uid in taken or "error" in decision.series[info.series_uid]["class"]:
                    continue
                if matches(info, role.match):
                    candidates.append(info)
            if candidates:
                best = sorted(candidates, key=_rank)[0]
                taken.add(best.series_uid)
                filled[role.name] = best.series_uid
                others = f" (over {len(candidates) - 1} other candidate(s))" if len(candidates) > 1 else ""
                decision.reasons.append(
                    f"rule {rule.name}: role {role.name} <- series {best.describe()}{others}"
                )
            else:
                filled[role.name] = None
                if role.required:
                    missing.append(role.name)
        if not any(filled.values()):
            decision.reasons.append(f"rule {rule.name} ({rule.pipeline}): no series matches any role")
            continue
        if missing:
            decision.incomplete.append({"rule": rule.name, "pipeline": rule.pipeline, "missing": missing})
            decision.reasons.append(
                f"rule {rule.name} ({rule.pipeline}): required series missing: {', '.join(missing)}; skipped"
            )
            continue
        if rule.pipeline in routed_pipelines:
            decision.reasons.append(f"rule {rule.name}: {rule.pipeline} already routed by an earlier rule")
            continue
        routed_pipelines.add(rule.pipeline)
        decision.routed.append(
            {"rule": rule.name, "pipeline": rule.pipeline, "roles": filled, "priority": rule.priority}
        )
        decision.reasons.append(f"rule {rule.name}: study routed to {rule.pipeline}")
    if not decision.routed and not decision.incomplete:
        decision.reasons.append("no rule matches this study: nothing to run")
    return decision


def series_infos(headers: Mapping[str, Sequence[Any]]) -> list[SeriesInfo]:
    """:class:`SeriesInfo` per series from ``{series_uid: [InstanceHeader or Dataset, ...]}``."""
    out = []
    for uid, items in headers.items():
        if not items:
            continue
        first = items[0]
        header = first.dataset if hasattr(first, "dataset") else first
        out.append(SeriesInfo(uid, header, len(items)))
    return out
