"""Batch conversion: wire values to Arrow columns, zero dates, derivations, PII hashing."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from partyhelp_pipeline.batches import (
    BatchContext,
    QualityCounts,
    convert_batch,
    keyed_hash,
    location_display,
    normalise_au_phone,
    normalise_email,
    title_from_key,
    yyyymmdd_to_days,
)
from partyhelp_pipeline.errors import BadDataError
from partyhelp_pipeline.spec import TABLES

EPOCH = dt.date(1970, 1, 1)


@pytest.mark.parametrize(
    ("key", "label"),
    [
        ("murder_mystery_night", "Murder Mystery Night"),
        ("21st_birthday", "21st Birthday"),
        ("wedding_reception", "Wedding Reception"),
        ("BBQ_party", "Bbq Party"),
        ("", ""),
    ],
)
def test_title_from_key(key: str, label: str) -> None:
    assert title_from_key(key) == label


@pytest.mark.parametrize(
    ("preferences", "selections", "text", "problem"),
    [
        ('["Fitzroy", "Carlton"]', None, "Fitzroy, Carlton", ""),
        (
            '["Fitzroy"]',
            '[{"area_id": 3, "suburb": "fitzroy"}, {"suburb": "Brunswick"}]',
            "Fitzroy, Brunswick",
            "",
        ),
        ("[]", "[]", None, ""),
        ("{}", None, None, "irregular"),
        (
            '[["Richmond", ["Kew"]], {"suburb": "St Kilda"}]',
            None,
            "Richmond, Kew, St Kilda",
            "irregular",
        ),
        ("null", None, None, ""),
        ('{"bad json', '["Carlton"]', "Carlton", "unreadable"),
        ('[1, true, "  South   Yarra "]', None, "South Yarra", "irregular"),
        (None, None, None, ""),
    ],
)
def test_location_display(
    preferences: str | None, selections: str | None, text: str | None, problem: str
) -> None:
    assert location_display(preferences, selections) == (text, problem)


@given(st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31)))
def test_yyyymmdd_to_days_matches_the_calendar(day: dt.date) -> None:
    value = np.array([day.year * 10000 + day.month * 100 + day.day], dtype=np.int64)
    days, real = yyyymmdd_to_days(value, np.array([True]))
    assert real[0] and days[0] == (day - EPOCH).days


def test_zero_and_partial_zero_dates_are_not_real() -> None:
    values = np.array([0, 20240500, 20240015, 20230229, 20240229, 99991231], dtype=np.int64)
    _, real = yyyymmdd_to_days(values, np.ones(6, dtype=bool))
    assert real.tolist() == [False, False, False, False, True, True]


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("0412 345 678", "+61412345678"),
        ("+61 412 345 678", "+61412345678"),
        ("61412345678", "+61412345678"),
        ("(03) 9123 4567", "+61391234567"),
        ("412345678", "+61412345678"),
        ("0011 61 412 345 678", "+61412345678"),
        ("+1 415 555 0100", None),
        ("call me", None),
    ],
)
def test_phone_numbers_normalise_to_e164(raw: str, e164: str | None) -> None:
    assert normalise_au_phone(raw) == e164


def test_email_normalises_and_hash_is_keyed() -> None:
    assert normalise_email("  Jane.Doe@Example.COM ") == "jane.doe@example.com"
    expected = hmac.new(b"salt", b"jane.doe@example.com", hashlib.sha256).hexdigest()
    assert keyed_hash("jane.doe@example.com", b"salt") == expected
    assert keyed_hash("jane.doe@example.com", b"other") != expected


VENUES = TABLES["ph_venues"]
VENUE_NAMES = list(VENUES.query_columns)


def _venues_context() -> BatchContext:
    return BatchContext(VENUES, VENUES.output_columns(), dt.date(2026, 11, 25))


def _venue_row(**wire_values: Any) -> tuple[Any, ...]:
    """A row of the venues query, by column name (in wire form); every other column NULL."""
    assert set(wire_values) <= set(VENUE_NAMES), set(wire_values) - set(VENUE_NAMES)
    return tuple(wire_values.get(name) for name in VENUE_NAMES)


def test_convert_batch_nulls_zero_dates_counts_orphans_and_sums_money() -> None:
    rows = [
        _venue_row(
            venue_id=1,
            business_name="A 🍺",
            area_id=1,
            area_name="CBD",
            suburb="Fitzroy",
            state="VIC",
            postcode="3065",
            status="active",
            credit_balance=-1234,  # cents
            approved_at=0,  # a zero date
            created_at=1_700_000_000_000_000,  # epoch microseconds
        ),
        _venue_row(
            venue_id=2,
            business_name="B",
            area_id=9,  # an area that no longer exists
            status="odd",
            credit_balance=9_999_999_999,
            approved_at=5_000_000,
            last_activity_at=0,
            created_at=0,
        ),
    ]
    quality = QualityCounts()
    batch = convert_batch(_venues_context(), VENUE_NAMES, rows, quality)
    columns = dict(zip([c.name for c in _venues_context().columns], batch.arrays, strict=True))
    assert columns["approved_at"].to_pylist() == [None, 5_000_000]  # epoch microseconds
    assert columns["created_at"].to_pylist()[1] is None
    assert columns["sync_date"].to_pylist() == [(dt.date(2026, 11, 25) - EPOCH).days] * 2
    assert batch.money_cents == {"credit_balance": 9_999_998_765}
    assert quality.counts == {
        "orphan_area": 1,
        "zero_date_nulled:approved_at": 1,
        "zero_date_nulled:created_at": 1,
        "zero_date_nulled:last_activity_at": 1,
    }
    assert quality.examples["orphan_area"] == [2]


def test_unsigned_overflow_names_table_column_and_row() -> None:
    rows = [_venue_row(venue_id=7, business_name="A", area_id=2**64 - 1, status="active")]
    with pytest.raises(BadDataError, match=r"ph_venues: column area_id of row id 7"):
        convert_batch(_venues_context(), VENUE_NAMES, rows, QualityCounts())


def test_quality_counts_keep_few_examples_and_merge() -> None:
    first, second = QualityCounts(), QualityCounts()
    first.add("x", list(range(10)))
    second.add("x", [42])
    first.merge(second)
    assert first.counts == {"x": 11} and first.examples == {"x": [0, 1, 2, 3, 4]}
    assert QualityCounts.from_dict(first.to_dict()) == first
