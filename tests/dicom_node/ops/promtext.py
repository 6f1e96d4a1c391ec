"""A strict reader of the Prometheus text format, for the tests (no client library here)."""

from __future__ import annotations

import math
import re
from collections import defaultdict

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """``(types, samples)``: family name -> type; sample name -> labels -> value.

    Raises ``AssertionError`` on anything the format does not allow: a sample
    before its family's TYPE, a name not of the family, a family declared twice,
    a bad label list or value, histogram buckets that are not cumulative.
    """
    assert text.endswith("\n"), "exposition must end with a newline"
    types: dict[str, str] = {}
    samples: Samples = defaultdict(dict)
    current: str | None = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in types, f"{name} declared twice"
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), kind
            types[name] = kind
            current = name
            continue
        match = _SAMPLE.match(line)
        assert match, f"bad sample line {line!r}"
        name, labels_text, value = match.groups()
        assert current is not None and name.startswith(current), f"{name} outside its family"
        suffix = name[len(current):]
        allowed = {"histogram": ("_bucket", "_sum", "_count")}.get(types[current], ("",))
        assert suffix in allowed, f"{name}: suffix {suffix!r} not allowed for {types[current]}"
        labels: list[tuple[str, str]] = []
        if labels_text:
            pos = 0
            while pos < len(labels_text):
                m = _LABEL.match(labels_text, pos)
                assert m, f"bad labels {labels_text!r}"
                labels.append((m.group(1), _unescape(m.group(2))))
                pos = m.end()
        key = tuple(labels)
        assert key not in samples[name], f"duplicate sample {line!r}"
        samples[name][key] = float(value)
    for name, kind in types.items():
        if kind == "histogram":
            _check_histogram(name, samples)
    return types, dict(samples)


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), text)


def _check_histogram(name: str, samples: Samples) -> None:
    series: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = defaultdict(list)
    for labels, value in samples.get(name + "_bucket", {}).items():
        le = dict(labels)["le"]
        rest = tuple(kv for kv in labels if kv[0] != "le")
        series[rest].append((math.inf if le == "+Inf" else float(le), value))
    for rest, buckets in series.items():
        buckets.sort()
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), f"{name}{rest}: buckets not cumulative"
        assert buckets[-1][0] == math.inf, f"{name}{rest}: no +Inf bucket"
        assert samples[name + "_count"][rest] == counts[-1], f"{name}{rest}: count != +Inf bucket"
        assert rest in samples[name + "_sum"]


def value(samples: Samples, name: str, **labels: str) -> float:
    """The value of one sample (labels compared as a set)."""
    for key, v in samples.get(name, {}).items():
        if dict(key) == labels:
            return v
    raise KeyError(f"{name}{labels} not in the exposition")
