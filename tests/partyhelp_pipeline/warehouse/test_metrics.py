"""``ph_sync_metrics`` and ``ph_sync_health`` on the real BigQuery emulator.

The history partitions are loaded straight into ``ph_venues_history`` (its real table, made
by ``history.ensure_history_table``) with rows chosen here, so each day's keys and NULLs
are known exactly; the manifests are real ``Manifest`` values as an export writes them
(their totals and freshness in the export's form). Each test works in a dataset of its own;
the last one measures the standard sync's real day (read only) against its manifests.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from google.cloud import bigquery

from partyhelp_pipeline import bq_jobs
from partyhelp_pipeline.clock import parse_iso
from partyhelp_pipeline.health import TableMetrics
from partyhelp_pipeline.manifest import Manifest
from partyhelp_pipeline.settings import Settings, load_settings
from partyhelp_pipeline.spec import HEALTH_VIEW, METRICS_TABLE, TABLES
from partyhelp_pipeline.warehouse.history import ensure_history_table
from partyhelp_pipeline.warehouse.metrics import (
    ensure_metrics_table,
    measure_day,
    metrics_history,
    was_fresh,
    write_metrics,
)
from partyhelp_pipeline.warehouse.target import (
    Warehouse,
    ensure_dataset,
    open_warehouse,
    schema_fields,
)
from partyhelp_pipeline.warehouse.views import refresh_health_view
from tests.conftest import STANDARD_SYNC_DATE, sync_environment
from tests.emulators import env_vars
from tests.faultkit import manifests, query
from tests.partyhelp_pipeline.warehouse.test_history import run_documented

VENUES = TABLES["ph_venues"]
DAY_1, DAY_2, DAY_4 = dt.date(2026, 11, 1), dt.date(2026, 11, 2), dt.date(2026, 11, 4)
FRESHNESS = {
    "column": "updated_at",
    "newest_at": "2026-11-02T01:30:00Z",
    "snapshot_at": "2026-11-02T13:00:00Z",
    "age_hours": 11.5,
    "warn_after_hours": 72.0,
    "error_after_hours": 168.0,
    "error_after_set": False,
    "status": "fresh",
}


@dataclass(frozen=True)
class Target:
    settings: Settings
    warehouse: Warehouse


@pytest.fixture()
def target(stack: None) -> Iterator[Target]:
    """A dataset of the test's own (no MySQL or GCS is used: their settings are unused)."""
    token = secrets.token_hex(4)
    env = sync_environment("unused", "unused", f"ph-metrics-{token}", f"ph_metrics_{token}")
    with env_vars(env):
        settings = load_settings()
    warehouse = open_warehouse(settings)
    ensure_dataset(warehouse)
    yield Target(settings, warehouse)
    warehouse.client.delete_dataset(warehouse.reference, delete_contents=True)


def venue(venue_id: int, **cells: Any) -> dict[str, Any]:
    return {"venue_id": venue_id, "business_name": f"Venue {venue_id}", "area_id": 1, **cells}


def load_day(warehouse: Warehouse, day: dt.date, rows: list[dict[str, Any]]) -> None:
    """Append ``rows`` as the day's partition of ``ph_venues_history``."""
    fields = VENUES.bigquery_schema()
    ensure_history_table(warehouse, VENUES, fields)
    config = bigquery.LoadJobConfig(
        schema=schema_fields(fields),
        source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
        write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
    )
    warehouse.client.load_table_from_json(
        [{**row, "sync_date": day.isoformat()} for row in rows],
        warehouse.table_ref(VENUES.history_name),
        job_config=config,
    ).result()


def manifest(
    day: dt.date, rows: int, cents: int, freshness: dict[str, Any] | None = None
) -> Manifest:
    totals = {"row_count": rows, "credit_balance": cents}
    return Manifest(
        table=VENUES.name,
        sync_date=day,
        export_id=f"export-{day}",
        flow_run_id="run-of-the-test",
        extracted_at=f"{day}T13:00:00Z",
        completed_at=f"{day}T13:01:00Z",
        parts=[],
        rows=rows,
        bytes=0,
        source_totals=totals,
        exported_totals=totals,
        quality={},
        chunks=[],
        avro_schema={},
        bigquery_schema=VENUES.bigquery_schema(),
        freshness=freshness,
    )


def null_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """NULL cells per output column, counted here (a cell left out of a row is NULL)."""
    return {
        column.name: sum(row.get(column.name) is None for row in rows)
        for column in VENUES.output_columns()
        if column.name != "sync_date"
    } | {"sync_date": 0}


DAYS = {
    DAY_1: [venue(i) for i in range(1, 6)],
    # 1 is gone; 6 and 7 are new, without a name; 2 lost its area
    DAY_2: [venue(2, area_id=None), *[venue(i) for i in (3, 4, 5)]]
    + [venue(i, business_name=None) for i in (6, 7)],
    # two days later (no day 3): 3 is gone, 8 is new
    DAY_4: [venue(i) for i in (2, 4, 5, 6, 7, 8)],
}


def test_a_days_metrics_count_keys_added_and_removed_and_nulls(target: Target) -> None:
    warehouse = target.warehouse
    for day, rows in DAYS.items():
        load_day(warehouse, day, rows)
    second = measure_day(warehouse, VENUES, manifest(DAY_2, 6, 123450, FRESHNESS))
    assert second == TableMetrics(
        sync_date=DAY_2,
        table_name="ph_venues",
        rows=6,
        rows_added=2,
        rows_removed=1,
        previous_sync_date=DAY_1,
        money_totals={"credit_balance": "1234.50"},
        null_counts=null_counts(DAYS[DAY_2]),
        freshness_column="updated_at",
        newest_at=dt.datetime(2026, 11, 2, 1, 30, tzinfo=dt.UTC),
        snapshot_at=dt.datetime(2026, 11, 2, 13, 0, tzinfo=dt.UTC),
        freshness_hours=11.5,
        freshness_status="fresh",
        mode="sync",
        flow_run_id="run-of-the-test",
        export_id=f"export-{DAY_2}",
    )
    assert second.null_counts["business_name"] == 2 and second.null_counts["area_id"] == 1
    assert second.null_counts["suburb"] == 6 and second.null_counts["venue_id"] == 0
    # Against the latest earlier day, across the gap.
    fourth = measure_day(warehouse, VENUES, manifest(DAY_4, 6, -5), mode="replay")
    assert (fourth.previous_sync_date, fourth.rows_added, fourth.rows_removed) == (DAY_2, 1, 1)
    assert fourth.money_totals == {"credit_balance": "-0.05"}
    assert fourth.null_counts == null_counts(DAYS[DAY_4])
    # A manifest written before freshness existed.
    assert (fourth.freshness_column, fourth.newest_at, fourth.freshness_status) == (None,) * 3
    assert fourth.mode == "replay"
    # The first day has nothing to compare with, even measured after the later ones.
    first = measure_day(warehouse, VENUES, manifest(DAY_1, 5, 0))
    assert (first.previous_sync_date, first.rows_added, first.rows_removed) == (None,) * 3
    assert (first.rows, first.money_totals) == (5, {"credit_balance": "0.00"})


def stored(warehouse: Warehouse) -> dict[tuple[str, dt.date], dict[str, Any]]:
    """Every row of ``ph_sync_metrics`` by (table, day); a pair twice fails."""
    rows = [
        dict(row.items())
        for row in warehouse.client.query(
            f"SELECT * FROM {warehouse.quoted_table_ref(METRICS_TABLE.name)}"
        ).result()
    ]
    keyed = {(row["table_name"], row["sync_date"]): row for row in rows}
    assert len(keyed) == len(rows), "a table and day stored twice"
    return keyed


def metrics(table: str, day: dt.date, rows: int, **fields: Any) -> TableMetrics:
    return TableMetrics(sync_date=day, table_name=table, rows=rows, **fields)


def test_the_metrics_table_is_partitioned_by_day_and_clustered_by_table(target: Target) -> None:
    table = ensure_metrics_table(target.warehouse)
    assert table.time_partitioning.type_ == "DAY"
    assert table.time_partitioning.field == "sync_date"
    assert table.clustering_fields == ["table_name"]
    assert [f.name for f in table.schema] == [*TableMetrics(DAY_1, "t", 0).to_row(), "recorded_at"]
    assert table.labels == {"source": "partyhelp-mysql", "pii": "none"}


def test_a_rerun_of_a_day_leaves_one_row_and_other_days_untouched(target: Target) -> None:
    warehouse = target.warehouse
    first = metrics("ph_venues", DAY_2, 6, rows_added=2, rows_removed=1, previous_sync_date=DAY_1)
    for written in (
        metrics("ph_venues", DAY_1, 5),
        first,
        metrics("ph_venues", DAY_4, 6),
        metrics("ph_leads", DAY_2, 40),
    ):
        write_metrics(warehouse, written)
    before = stored(warehouse)
    rerun = replace(first, rows=7, rows_added=3, anomalies=("rows_added",), flow_run_id="run-2")
    write_metrics(warehouse, rerun)
    after = stored(warehouse)
    assert set(after) == set(before)
    assert (after[("ph_venues", DAY_2)]["rows"], after[("ph_venues", DAY_2)]["anomalies"]) == (
        7,
        "rows_added",
    )
    assert after[("ph_venues", DAY_2)]["recorded_at"] > before[("ph_venues", DAY_2)]["recorded_at"]
    assert {k: v for k, v in after.items() if k != ("ph_venues", DAY_2)} == {
        k: v for k, v in before.items() if k != ("ph_venues", DAY_2)
    }
    # A replay of the oldest day replaces its row only.
    write_metrics(warehouse, replace(metrics("ph_venues", DAY_1, 5), mode="replay"))
    replayed = stored(warehouse)
    assert replayed[("ph_venues", DAY_1)]["mode"] == "replay"
    assert {k: v for k, v in replayed.items() if k != ("ph_venues", DAY_1)} == {
        k: v for k, v in after.items() if k != ("ph_venues", DAY_1)
    }


def test_a_retried_write_attaches_to_its_job_instead_of_writing_again(target: Target) -> None:
    warehouse, day = target.warehouse, metrics("ph_venues", DAY_1, 5)
    with bq_jobs.job_run("metrics-test-run", 1):
        write_metrics(warehouse, day)
        first = stored(warehouse)[("ph_venues", DAY_1)]["recorded_at"]
        write_metrics(warehouse, day)  # a retried task: the same run, attempt and input
    assert stored(warehouse)[("ph_venues", DAY_1)]["recorded_at"] == first
    with bq_jobs.job_run("metrics-test-run", 2):  # a new attempt of the run writes anew
        write_metrics(warehouse, day)
    assert stored(warehouse)[("ph_venues", DAY_1)]["recorded_at"] > first


def test_metrics_history_is_the_window_before_the_day_oldest_first(target: Target) -> None:
    warehouse, before = target.warehouse, dt.date(2026, 11, 20)
    assert metrics_history(warehouse, "ph_leads", before, 5) == []  # no metrics table yet
    written = [
        metrics(
            "ph_leads",
            before + dt.timedelta(days=offset),
            100 + offset,
            rows_added=3,
            rows_removed=0,
            previous_sync_date=before + dt.timedelta(days=offset - 1),
            money_totals={"amount": "12.30"},
            null_counts={"status": offset + 7},
            newest_at=dt.datetime(2026, 11, 1, 2, 3, 4, tzinfo=dt.UTC),
            freshness_hours=1.25,
            freshness_status="fresh",
            anomalies=("rows_added", "null_rate.status"),
            export_id=f"export-{offset}",
        )
        for offset in (0, -1, -3, -5, -6)  # not in order; -2 and -4 were not published
    ]
    for day in [*written, metrics("ph_venues", before - dt.timedelta(days=1), 9)]:
        write_metrics(warehouse, day)
    window = metrics_history(warehouse, "ph_leads", before, 5)
    assert window == sorted(
        (m for m in written if before - dt.timedelta(days=5) <= m.sync_date < before),
        key=lambda m: m.sync_date,
    )
    assert [m.sync_date.day for m in window] == [15, 17, 19]
    assert metrics_history(warehouse, "ph_venues", before, 1)[0].rows == 9
    assert metrics_history(warehouse, "ph_lead_matches", before, 5) == []


def test_was_fresh_when_any_stored_day_was_within_the_limit(target: Target) -> None:
    warehouse = target.warehouse
    assert was_fresh(warehouse, "ph_leads", 72) is False  # no metrics table yet
    for offset, hours in enumerate((80.0, None, 30.5)):
        day = DAY_1 + dt.timedelta(days=offset)
        write_metrics(warehouse, metrics("ph_leads", day, 10, freshness_hours=hours))
    write_metrics(warehouse, metrics("ph_venues", DAY_1, 10, freshness_hours=1.0))
    assert was_fresh(warehouse, "ph_leads", 24) is False
    assert was_fresh(warehouse, "ph_leads", 30.5) is True
    assert was_fresh(warehouse, "ph_leads", 100) is True
    assert was_fresh(warehouse, "ph_lead_matches", 100) is False


NEWEST = dt.datetime(2026, 11, 30, 22, 15, tzinfo=dt.UTC)


def write_health_days(warehouse: Warehouse) -> dict[int, dt.date]:
    """Days of four tables, today (UTC: the emulator's CURRENT_DATE()) and 89 and 90 days
    before, of every freshness status; the days by how long ago."""
    today = dt.datetime.now(dt.UTC).date()
    days_ago = {n: today - dt.timedelta(days=n) for n in (0, 1, 89, 90)}
    for written in (
        metrics(
            "ph_leads",
            days_ago[0],
            50,
            rows_added=9,
            rows_removed=0,
            newest_at=NEWEST,
            freshness_hours=5.0,
            freshness_status="fresh",
            anomalies=("rows_added", "null_rate.status"),
        ),
        metrics("ph_leads", days_ago[1], 41, rows_added=0, rows_removed=0, newest_at=NEWEST),
        metrics(
            "ph_leads", days_ago[89], 40, rows_added=1, rows_removed=0, freshness_status="warn"
        ),
        metrics("ph_leads", days_ago[90], 30, freshness_status="fresh"),
        metrics(
            "ph_venues", days_ago[0], 8, rows_added=0, rows_removed=0, freshness_status="unknown"
        ),
        metrics("ph_lead_matches", days_ago[0], 7),  # freshness not recorded
        metrics("ph_credit_transactions", days_ago[0], 6, freshness_status="stale"),
    ):
        write_metrics(warehouse, written)
    return days_ago


def test_the_health_view_shows_the_last_90_days_judged(target: Target) -> None:
    warehouse = target.warehouse
    days_ago = write_health_days(warehouse)
    assert refresh_health_view(warehouse) == warehouse.table_ref("ph_sync_health")
    rows = [
        dict(row.items())
        for row in warehouse.client.query(
            f"SELECT * FROM {warehouse.quoted_table_ref('ph_sync_health')}"
        ).result()
    ]
    assert [list(row) for row in rows[:1]] == [[c.name for c in HEALTH_VIEW.columns]]
    judged = {
        (r["table_name"], r["sync_date"]): (r["rows"], r["anomaly_count"], r["is_normal"])
        for r in rows
    }
    assert judged == {
        ("ph_leads", days_ago[0]): (50, 2, False),
        ("ph_leads", days_ago[1]): (41, 0, True),
        ("ph_leads", days_ago[89]): (40, 0, False),  # warn
        ("ph_venues", days_ago[0]): (8, 0, True),
        ("ph_lead_matches", days_ago[0]): (7, 0, True),
        ("ph_credit_transactions", days_ago[0]): (6, 0, False),  # stale
    }
    view = warehouse.client.get_table(warehouse.table_ref("ph_sync_health"))
    assert view.description == HEALTH_VIEW.description
    assert {f.name: f.description for f in view.schema} == {
        c.name: c.description for c in HEALTH_VIEW.columns
    }
    assert {f.name: f.field_type for f in view.schema}["is_normal"] in ("BOOL", "BOOLEAN")


def test_the_documented_health_queries(target: Target) -> None:
    """``docs/queries.md``'s "Is today normal?" and "When did the source last change?",
    exactly as written there."""
    days_ago = write_health_days(target.warehouse)
    refresh_health_view(target.warehouse)
    latest = run_documented(target.settings, "Is today normal?")
    assert [(r["table_name"], r["sync_date"], r["is_normal"]) for r in latest] == [
        ("ph_credit_transactions", days_ago[0], False),
        ("ph_leads", days_ago[0], False),
        ("ph_lead_matches", days_ago[0], True),
        ("ph_venues", days_ago[0], True),
    ]
    assert latest[1] == {
        "table_name": "ph_leads",
        "sync_date": days_ago[0],
        "rows": 50,
        "rows_added": 9,
        "rows_removed": 0,
        "freshness_status": "fresh",
        "freshness_hours": 5.0,
        "anomalies": "rows_added,null_rate.status",
        "is_normal": False,
    }
    changes = run_documented(target.settings, "When did the source last change?")
    by_table = {r.pop("table_name"): r for r in changes}
    assert by_table["ph_leads"] == {
        "newest_at": NEWEST,
        "last_day_keys_changed": days_ago[0],
        "last_synced": days_ago[0],
    }
    assert by_table["ph_venues"] == {
        "newest_at": None,
        "last_day_keys_changed": None,
        "last_synced": days_ago[0],
    }
    assert set(by_table) == {"ph_leads", "ph_venues", "ph_lead_matches", "ph_credit_transactions"}


@pytest.mark.parametrize("table", list(TABLES))
def test_a_real_syncs_day_is_measured_from_its_history_and_manifest(
    standard_sync: dict[str, Any], table: str
) -> None:
    """The standard sync's day (read only), each NULL counted here from the rows."""
    assert standard_sync["state"].is_completed(), standard_sync["state"].message
    settings, spec = standard_sync["settings"], TABLES[table]
    with env_vars(standard_sync["env"]):
        export = manifests(settings, STANDARD_SYNC_DATE, table)[-1]
        measured = measure_day(open_warehouse(settings), spec, export)
        rows = query(
            settings,
            f"SELECT * FROM {settings.quoted_table_ref(spec.history_name)} "
            f"WHERE sync_date = '{STANDARD_SYNC_DATE}'",
        )
    assert measured.rows == len(rows) == export.rows > 0
    assert measured.null_counts == {
        field["name"]: sum(row[field["name"]] is None for row in rows)
        for field in export.bigquery_schema
    }
    assert (measured.previous_sync_date, measured.rows_added, measured.rows_removed) == (None,) * 3
    assert measured.money_totals == {
        column.name: f"{sum(row[column.name] or 0 for row in rows):.2f}"
        for column in spec.money_columns
    }
    freshness = export.freshness or {}
    assert freshness.get("column") == (spec.freshness.column if spec.freshness else None)
    assert measured.freshness_column == freshness.get("column")
    assert measured.freshness_status == freshness.get("status")
    assert measured.freshness_hours == freshness.get("age_hours")
    newest = freshness.get("newest_at")
    assert measured.newest_at == (parse_iso(newest) if newest else None)
    assert (measured.export_id, measured.flow_run_id) == (export.export_id, export.flow_run_id)
