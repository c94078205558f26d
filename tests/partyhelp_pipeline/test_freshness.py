"""Source freshness, the plain functions: limits from the spec and the two settings, one
reading from the chunks' readings, and the lines people read. The sync's behaviour on a
stale source is in tests/scenarios/test_source_freshness.py and test_stale_replica.py."""

from __future__ import annotations

import datetime as dt

import pytest

from partyhelp_pipeline import freshness
from partyhelp_pipeline.freshness import Limits
from partyhelp_pipeline.spec import TABLES

LEADS = TABLES["ph_leads"]  # updated_at, warn 24 h, error 72 h
SNAPSHOT = int(dt.datetime(2026, 12, 5, 3, 0, tzinfo=dt.UTC).timestamp())
HOUR = 3600


def test_every_table_names_a_freshness_column_of_its_driving_table() -> None:
    for spec in TABLES.values():
        assert spec.freshness is not None
        assert spec.freshness.column in ("created_at", "updated_at")
        assert (spec.source_table, spec.freshness.column) in spec.source_columns


@pytest.mark.parametrize(
    ("max_age", "warn_age", "expected"),
    [
        (None, None, Limits(24, 72, False)),
        (6, None, Limits(6, 6, True)),  # warn_after never above error_after
        (100, 2, Limits(2, 100, True)),
        (None, 30, Limits(30, 72, False)),
        (0, 2, freshness.NO_LIMITS),  # 0: the check is off
    ],
)
def test_limits_come_from_the_spec_and_the_settings(
    max_age: float | None, warn_age: float | None, expected: Limits
) -> None:
    assert Limits.for_table(LEADS, max_age, warn_age) == expected


@pytest.mark.parametrize(
    ("age_hours", "status"),
    [(1, "fresh"), (24, "fresh"), (25, "warn"), (72, "warn"), (73, "stale"), (-5, "fresh")],
)
def test_the_status_of_an_age(age_hours: float, status: str) -> None:
    assert freshness.status_of(age_hours, Limits(24, 72)) == status


def test_no_value_is_unknown_and_no_limit_is_off() -> None:
    assert freshness.status_of(None, Limits(24, 72)) == "unknown"
    assert freshness.status_of(500, freshness.NO_LIMITS) == "off"


def test_the_newest_of_all_chunks_against_the_earliest_clock() -> None:
    readings = [
        (SNAPSHOT - 30 * HOUR, SNAPSHOT),
        (SNAPSHOT - 50 * HOUR, SNAPSHOT + 60),  # a later chunk's snapshot
        (0, SNAPSHOT + 120),  # a chunk holding only zero dates
        (None, SNAPSHOT + 180),  # a chunk whose column is all NULL
    ]
    measured = freshness.measure(LEADS, readings, Limits(24, 72))
    assert measured is not None
    assert measured.newest_at == "2026-12-03T21:00:00Z"
    assert measured.snapshot_at == "2026-12-05T03:00:00Z"
    assert (measured.age_hours, measured.status) == (30.0, "warn")
    assert freshness.SourceFreshness.from_dict(measured.to_dict()) == measured


def test_a_table_without_a_value_is_unknown() -> None:
    measured = freshness.measure(LEADS, [(None, SNAPSHOT), (0, SNAPSHOT)], Limits(24, 72))
    assert measured is not None
    assert (measured.newest_at, measured.age_hours, measured.status) == (None, None, "unknown")
    assert measured.describe() == "no updated_at value to judge"


def test_the_stale_line_names_the_table_its_newest_row_its_age_and_the_limit() -> None:
    stale = freshness.measure(LEADS, [(SNAPSHOT - 80 * HOUR, SNAPSHOT)], Limits(24, 72))
    assert stale is not None and stale.status == "stale"
    assert freshness.stale_message("ph_leads", stale) == (
        "ph_leads: the source is stale: newest updated_at 2026-12-01 19:00:00 UTC, "
        "3.3 days old at the export's snapshot (error_after 3.0 days)"
    )
    by_setting = freshness.measure(LEADS, [(SNAPSHOT - 7 * HOUR, SNAPSHOT)], Limits(2, 6, True))
    assert by_setting is not None
    assert freshness.stale_message("ph_leads", by_setting).endswith(
        "7.0 h old at the export's snapshot (PARTYHELP_MAX_SOURCE_AGE_HOURS 6.0 h)"
    )
    assert freshness.limits_text(by_setting) == (
        "warn_after 2.0 h, PARTYHELP_MAX_SOURCE_AGE_HOURS 6.0 h"
    )


def test_past_warn_after_the_line_says_so_and_names_warn_after() -> None:
    ageing = freshness.measure(LEADS, [(SNAPSHOT - 30 * HOUR, SNAPSHOT)], Limits(24, 72))
    assert ageing is not None
    assert freshness.stale_message("ph_leads", ageing) == (
        "ph_leads: the source is getting old: newest updated_at 2026-12-03 21:00:00 UTC, "
        "30.0 h old at the export's snapshot (warn_after 24.0 h)"
    )
