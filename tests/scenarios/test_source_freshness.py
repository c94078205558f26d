"""Source freshness on the real stack (issue 21, section 1): a source whose newest row is
older than its limit fails the table before anything is published, naming the table, its
newest row and its age; ``--allow-stale`` publishes it and the summary says so;
``warn_after`` warns and lets the run go on; ``PARTYHELP_MAX_SOURCE_AGE_HOURS=0`` turns the
check off; the spec's own limit applies once a published day was fresh; ``check`` prints
each table's freshness.

The session's source (``source_db``) has fixed dates, its newest venue and purchase weeks
before today's clock: a stale source, as is. The stale replica is in test_stale_replica.py.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from partyhelp_pipeline import preflight
from partyhelp_pipeline.health import TableMetrics
from partyhelp_pipeline.spec import TABLES as SPECS
from partyhelp_pipeline.warehouse import metrics
from partyhelp_pipeline.warehouse.target import open_warehouse
from tests import faultkit
from tests.faultkit import Source, environment, flow_run_record, new_target, sync_on

pytestmark = pytest.mark.services

TABLES = ["ph_venues", "ph_lead_purchases"]
NEWEST = {
    "ph_venues": ("venues", "updated_at"),
    "ph_lead_purchases": ("lead_purchases", "created_at"),
}


# The sync's day (the test clock); the freshness is measured on the source's own clock.
DAY = dt.date(2026, 11, 25)


@pytest.fixture(scope="module")
def source(source_db: dict[str, Any]) -> Source:
    return Source(source_db["database"], source_db["user"])


def newest_text(source: Source, table: str) -> str:
    """The table's newest freshness value as the line names it, read from the source."""
    name, column = NEWEST[table]
    newest = source.scalar(f"SELECT MAX(`{column}`) FROM `{name}` WHERE id < 900000000")
    return f"newest {column} {newest:%Y-%m-%d %H:%M:%S} UTC"


def test_a_stale_source_fails_before_publishing_naming_its_newest_row_and_age(
    source: Source,
) -> None:
    env = new_target(source, "stale", PARTYHELP_MAX_SOURCE_AGE_HOURS="24")
    with environment(env) as settings:
        state = sync_on(DAY, tables=TABLES)
        assert state.is_failed()
        for table in TABLES:
            line = re.escape(f"{table}: the source is stale: {newest_text(source, table)}, ")
            assert re.search(
                line + r"\d+\.\d days old at the export's snapshot "
                r"\(PARTYHELP_MAX_SOURCE_AGE_HOURS 24\.0 h\); not published",
                state.message,
            ), state.message
        assert faultkit.table_states(settings) == {}  # no table, no view: nothing published
        audit = faultkit.query(
            settings, f"SELECT table_name, status, error FROM `{settings.bq_dataset}.ph_sync_runs`"
        )
        assert {(r["table_name"], r["status"]) for r in audit} == {(t, "Failed") for t in TABLES}
        # The exports are kept, for an audit of what was refused.
        assert all(faultkit.manifests(settings, DAY, table) for table in TABLES)


def test_allow_stale_publishes_and_the_summary_says_so(source: Source) -> None:
    env = new_target(source, "allowed", PARTYHELP_MAX_SOURCE_AGE_HOURS="24")
    with environment(env) as settings:
        state = sync_on(DAY, tables=TABLES, allow_stale=True)
        assert state.is_completed(), state.message
        result = state.result()
        for table in TABLES:
            assert result["tables"][table]["freshness"] == "stale"
            faultkit.assert_table_equals_source(settings, source, table, DAY)
        record = flow_run_record(state.state_details.flow_run_id)
        summary = next(a.data for a in record.artifacts if a.key == "partyhelp-sync-summary")
    assert "## Source freshness" in summary
    for table in TABLES:
        assert f"- {table}: the source is stale: {newest_text(source, table)}" in summary
    assert summary.count("published anyway (--allow-stale)") == len(TABLES)


def test_past_warn_after_the_run_warns_and_goes_on(source: Source) -> None:
    env = new_target(
        source,
        "warned",
        PARTYHELP_WARN_SOURCE_AGE_HOURS="1",
        PARTYHELP_MAX_SOURCE_AGE_HOURS="100000",
    )
    with environment(env):
        state = sync_on(DAY, tables=["ph_venues"])
        assert state.is_completed(), state.message
        assert state.result()["tables"]["ph_venues"]["freshness"] == "warn"
        warned = [
            m
            for m in flow_run_record(
                state.state_details.flow_run_id, final_log="ph_venues: the source is getting old"
            ).messages()
            if m.startswith("ph_venues: the source is getting old: ")
        ]
    assert len(warned) == 1 and warned[0].endswith("(warn_after 1.0 h)"), warned


def test_zero_turns_the_check_off(source: Source) -> None:
    env = new_target(source, "off", PARTYHELP_MAX_SOURCE_AGE_HOURS="0")
    with environment(env) as settings:
        state = sync_on(DAY, tables=["ph_venues"])
        assert state.is_completed(), state.message
        assert state.result()["tables"]["ph_venues"]["freshness"] == "off"
        (manifest,) = faultkit.manifests(settings, DAY, "ph_venues")
    assert manifest.freshness is not None
    assert (manifest.freshness["status"], manifest.freshness["error_after_hours"]) == ("off", None)
    assert manifest.freshness["age_hours"] > 24 * 20  # measured all the same


def test_the_spec_limit_applies_once_a_published_day_was_fresh(source: Source) -> None:
    env = new_target(source, "baseline")
    with environment(env) as settings:
        # Never fresh here: an old copy (a new install, a restored backup) loads, and warns.
        first = sync_on(DAY, tables=["ph_venues"])
        assert first.is_completed(), first.message
        assert first.result()["tables"]["ph_venues"]["freshness"] == "stale"
        warehouse = open_warehouse(settings)
        fresh_day = TableMetrics(
            DAY - dt.timedelta(days=3), "ph_venues", rows=40, freshness_hours=2.0
        )
        metrics.write_metrics(warehouse, fresh_day)
        # The table has been fresh on a published day: now its source going stale fails it.
        again = sync_on(DAY, tables=["ph_venues"])
        assert again.is_failed()
        assert "ph_venues: the source is stale: " in again.message
        assert "(error_after 7.0 days); not published" in again.message


def test_check_prints_each_tables_freshness(source: Source) -> None:
    env = new_target(source, "check", PARTYHELP_MAX_SOURCE_AGE_HOURS="24")
    with environment(env):
        lines = {r.name: r for r in preflight.run_checks()}
    venues = lines["freshness ph_venues"]
    assert not venues.ok
    assert venues.detail.startswith(f"stale: {newest_text(source, 'ph_venues')}, ")
    assert venues.detail.endswith(
        "(warn_after 24.0 h, PARTYHELP_MAX_SOURCE_AGE_HOURS 24.0 h); a sync fails it"
    )
    assert {name for name in lines if name.startswith("freshness ")} == {
        f"freshness {t}" for t in SPECS
    }
