"""Codes and identity: private codes stable and unique, UIDs derived and valid."""

from __future__ import annotations

import re

from pydicom.uid import UID

from dicom_node.results import codes
from dicom_node.results.identity import (
    ModelIdentity,
    derive_uid,
    instance_uid,
    series_number,
    series_uid,
    stack_instance_uid,
    stack_series_uid,
)
from inference.labels import DISC_LEVELS
from inference.sij.quadrants import QUADRANT_NAMES


def _private_codes() -> list[object]:
    found = [v for v in vars(codes).values() if getattr(v, "scheme_designator", None) == codes.PRIVATE_SCHEME]
    for table in (codes.MSU_SIZE, codes.MSU_ZONE, codes.QUADRANT_CODES):
        found += list(table.values())
    return found


def test_private_code_values_are_unique_and_well_formed() -> None:
    by_value: dict[str, str] = {}
    for code in _private_codes():
        assert re.fullmatch(r"DN\d{4}", code.value), code  # type: ignore[attr-defined]
        assert by_value.setdefault(code.value, code.meaning) == code.meaning  # type: ignore[attr-defined]
    # a few values are a contract with readers of old reports
    assert codes.MSU_SIZE[2].value == "DN0012" and codes.MSU_ZONE["AB"].value == "DN0021"
    assert codes.SPARCC_FM_SCORE.value == "DN0100" and codes.AXSPA_PROBABILITY.value == "DN0120"


def test_every_level_and_quadrant_has_a_code() -> None:
    assert set(codes.DISC_CODES) == set(DISC_LEVELS)
    assert list(codes.QUADRANT_CODES) == list(QUADRANT_NAMES)


def test_coding_scheme_item_declares_the_private_scheme() -> None:
    item = codes.coding_scheme_item()
    assert item.CodingSchemeDesignator == "99DCMNODE" and item.CodingSchemeName


def test_uids_are_valid_deterministic_and_model_specific() -> None:
    m1 = ModelIdentity("ldh", "1.0", "a" * 64, "research use only")
    m2 = ModelIdentity("ldh", "1.1", "a" * 64, "research use only")
    uid = instance_uid("1.2.3", "ldh", m1, "seg", 0)
    assert UID(uid).is_valid and len(uid) <= 64 and uid.startswith("2.25.")
    assert uid == instance_uid("1.2.3", "ldh", m1, "seg", 0)
    assert uid != instance_uid("1.2.3", "ldh", m2, "seg", 0)
    assert uid != instance_uid("1.2.4", "ldh", m1, "seg", 0)
    assert uid != instance_uid("1.2.3", "ldh", m1, "seg", 1)
    assert series_uid("1.2.3", "ldh", m1, "seg") != series_uid("1.2.3", "ldh", m1, "sr")
    assert derive_uid("x") != derive_uid("y")


def test_stack_uids_are_per_stack_and_apart_from_the_plain_ones() -> None:
    m1 = ModelIdentity("ldh", "1.0", "a" * 64, "research use only")
    m2 = ModelIdentity("ldh", "1.1", "a" * 64, "research use only")
    series = [stack_series_uid("1.2.3", "ldh", m1, "seg", k) for k in range(3)]
    assert len(set(series)) == 3 and all(UID(u).is_valid for u in series)
    assert series[0] == stack_series_uid("1.2.3", "ldh", m1, "seg", 0)
    assert series[0] != stack_series_uid("1.2.3", "ldh", m2, "seg", 0)
    assert series_uid("1.2.3", "ldh", m1, "seg") not in series
    # an instance never moves series: the stack UIDs are not those of the one-series layout
    assert stack_instance_uid("1.2.3", "ldh", m1, "seg", 0) != instance_uid("1.2.3", "ldh", m1, "seg", 0)


def test_series_numbers_are_fixed_and_distinct() -> None:
    numbers = {series_number(p, k) for p in ("ldh", "sij") for k in ("seg", "sr", "pdf", "sc")}
    assert len(numbers) == 8
    assert series_number("ldh", "seg") == 9001 and series_number("sij", "sr") == 9012
