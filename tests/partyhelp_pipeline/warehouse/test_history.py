"""Point-in-time history on the real local stack: three daily syncs, the source changing
between them (balances move, purchases are added, a lead is deleted, a venue is renamed,
purchases land on financial-period boundaries), then reruns, a replay and a failed load.

The days are made with the test clock (``PARTYHELP_CLOCK_DATE``): each sync is the
production path of a sync from MySQL, on a day the test says is today. The expected
tables come from the independent oracle (``tests/oracle.py``), read from the source just
before each day's sync.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from google.cloud import bigquery

from flows.partyhelp_sync import partyhelp_bigquery_sync
from partyhelp_pipeline.clients import bigquery_client
from partyhelp_pipeline.clock import SyncDateError, sync_date_for
from partyhelp_pipeline.errors import LoadError
from partyhelp_pipeline.settings import Settings
from partyhelp_pipeline.spec import SALES_BY_FINANCIAL_PERIOD, TABLES
from partyhelp_pipeline.warehouse.history import ensure_history_table
from partyhelp_pipeline.warehouse.replace import replace_table
from partyhelp_pipeline.warehouse.target import ensure_dataset, open_warehouse
from tests.conftest import ROOT, admin_connection
from tests.faultkit import (
    environment,
    manifests,
    new_target,
    source_database,
    sync_on,
    table_states,
    with_corrupt_first_part,
)
from tests.oracle import diff_tables, expected_tables

# Across a month's end, so "the balance at each month's end" has two months to show.
DAYS = (dt.date(2026, 10, 30), dt.date(2026, 10, 31), dt.date(2026, 11, 1))
MELBOURNE = ZoneInfo("Australia/Melbourne")
RENAMED = "Renamed Rooftop Bar (day 3)"


def _utc(local: dt.datetime) -> dt.datetime:
    return local.replace(tzinfo=MELBOURNE).astimezone(dt.UTC)


def boundary_moments() -> list[dt.datetime | None]:
    """Purchase times around every period edge, in Melbourne time: each month's first and
    last second of 2026, 30 June / 1 July (23:30 UTC on 30 June is 1 July there), both
    daylight-saving changes (5 April and 4 October 2026), and no time at all."""
    moments: list[dt.datetime | None] = []
    for month in range(1, 13):
        first = dt.datetime(2026, month, 1)
        moments += [_utc(first), _utc(first) - dt.timedelta(seconds=1)]
    moments += [
        dt.datetime(2026, 6, 30, 23, 30, tzinfo=dt.UTC),
        dt.datetime(2026, 6, 30, 13, 59, 59, tzinfo=dt.UTC),
        # 5 April: 03:00 AEDT becomes 02:00 AEST; 4 October: 02:00 becomes 03:00
        dt.datetime(2026, 4, 4, 15, 59, 59, tzinfo=dt.UTC),
        dt.datetime(2026, 4, 4, 16, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 4, 4, 12, 59, 59, tzinfo=dt.UTC),
        dt.datetime(2026, 10, 3, 15, 59, 59, tzinfo=dt.UTC),
        dt.datetime(2026, 10, 3, 16, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 10, 3, 13, 59, 59, tzinfo=dt.UTC),
        None,
        None,
    ]
    return moments


def _execute(database: str, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
    with admin_connection(database) as connection, connection.cursor() as cursor:
        cursor.execute("SET time_zone = '+00:00'")
        for sql, args in statements:
            cursor.execute(sql, args)
        connection.commit()


def _between_day_one_and_two(database: str) -> None:
    """Balances move and purchases are added, some on financial-period edges."""
    statements: list[tuple[str, tuple[Any, ...]]] = [
        ("UPDATE venues SET credit_balance = credit_balance + 12.34 ORDER BY id LIMIT 3", ()),
        ("UPDATE venues SET credit_balance = credit_balance - 0.01 ORDER BY id DESC LIMIT 2", ()),
    ]
    for index, moment in enumerate(boundary_moments()):
        statements.append(
            (
                "INSERT INTO lead_purchases (lead_id, venue_id, amount_paid, discount_percent, "
                "lead_status, created_at) SELECT l.id, v.id, %s, 0, 'pending', %s "
                "FROM leads l, venues v ORDER BY l.id, v.id LIMIT 1 OFFSET %s",
                (
                    Decimal("10.00") + Decimal(index) / 3 // Decimal("0.01") * Decimal("0.01"),
                    moment.strftime("%Y-%m-%d %H:%M:%S") if moment else None,
                    index % 7,
                ),
            )
        )
    _execute(database, statements)


def _between_day_two_and_three(database: str) -> None:
    """A lead is deleted and another changed, a venue renamed, a balance moves again, and a
    purchase carries a zero date (the legacy app could write one)."""
    _execute(
        database,
        [
            ("DELETE FROM leads ORDER BY id DESC LIMIT 1", ()),
            ("UPDATE venues SET business_name = %s ORDER BY id LIMIT 1", (RENAMED,)),
            ("UPDATE leads SET status = 'cancelled', guest_count = 999 ORDER BY id LIMIT 1", ()),
            ("UPDATE venues SET credit_balance = credit_balance + 100 ORDER BY id LIMIT 1", ()),
            ("SET SESSION sql_mode = ''", ()),
            (
                "INSERT INTO lead_purchases (lead_id, venue_id, amount_paid, discount_percent, "
                "lead_status, created_at) SELECT MIN(l.id), MIN(v.id), 7.77, 0, 'pending', "
                "'0000-00-00 00:00:00' FROM leads l, venues v",
                (),
            ),
        ],
    )


@pytest.fixture(scope="module")
def history(stack: None) -> Iterator[dict[str, Any]]:
    """Three daily syncs of one source that changes between them; what each day held."""
    with (
        source_database("ph_hist", scale=0.02, seed=11) as source,
        environment(new_target(source, "hist")) as settings,
    ):
        expected: dict[dt.date, dict[str, dict[int, dict]]] = {}
        states = {}
        changes = {DAYS[0]: _between_day_one_and_two, DAYS[1]: _between_day_two_and_three}
        for day in DAYS:
            with admin_connection(source.database) as connection:
                expected[day] = expected_tables(connection, day)
            states[day] = sync_on(day)
            if day in changes:
                changes[day](source.database)
        yield {"source": source, "settings": settings, "expected": expected, "states": states}


def _rows(settings: Settings, table: str, day: dt.date | None = None) -> list[dict]:
    where = "" if day is None else " WHERE sync_date = @day"
    config = bigquery.QueryJobConfig(
        query_parameters=[
            bigquery.ScalarQueryParameter("day", "DATE", day.isoformat() if day else None)
        ]
    )
    sql = f"SELECT * FROM {settings.quoted_table_ref(table)}{where}"
    return [dict(row.items()) for row in bigquery_client(settings).query(sql, config).result()]


def _keyed(rows: list[dict], key: str) -> dict[int, dict]:
    keyed = {row[key]: row for row in rows}
    assert len(keyed) == len(rows), "a key appears twice"
    return keyed


def test_every_day_completed_and_the_source_really_changed(history: dict) -> None:
    assert all(state.is_completed() for state in history["states"].values()), [
        s.message for s in history["states"].values()
    ]
    first, second, third = (history["expected"][day] for day in DAYS)
    assert len(second["ph_lead_purchases"]) == len(first["ph_lead_purchases"]) + 34
    assert len(third["ph_leads"]) == len(second["ph_leads"]) - 1
    assert RENAMED in {v["business_name"] for v in third["ph_venues"].values()}
    assert sum(v["credit_balance"] for v in second["ph_venues"].values()) == sum(
        v["credit_balance"] for v in first["ph_venues"].values()
    ) + Decimal("37.00")


@pytest.mark.parametrize("table", list(TABLES))
def test_each_history_partition_equals_the_source_of_its_day(history: dict, table: str) -> None:
    settings, spec = history["settings"], TABLES[table]
    for day in DAYS:
        expected = history["expected"][day][table]
        actual = _keyed(_rows(settings, spec.history_name, day), spec.primary_key)
        assert len(actual) == len(expected) > 0, day
        assert diff_tables(expected, actual) == [], day
    days = {row["sync_date"] for row in _rows(settings, spec.history_name)}
    assert days == set(DAYS)


@pytest.mark.parametrize("table", list(TABLES))
def test_the_current_tables_equal_the_last_day(history: dict, table: str) -> None:
    settings, spec = history["settings"], TABLES[table]
    actual = _keyed(_rows(settings, table), spec.primary_key)
    assert diff_tables(history["expected"][DAYS[-1]][table], actual) == []
    assert len(actual) == len(history["expected"][DAYS[-1]][table])


def test_history_tables_are_partitioned_clustered_and_expire(history: dict) -> None:
    settings = history["settings"]
    client = bigquery_client(settings)
    for spec in TABLES.values():
        table = client.get_table(settings.table_ref(spec.history_name))
        assert table.time_partitioning.field == "sync_date"
        assert table.time_partitioning.type_ == "DAY"
        assert table.time_partitioning.expiration_ms == 400 * 86_400_000
        assert table.clustering_fields == list(spec.cluster_by)
        current = client.get_table(settings.table_ref(spec.name))
        assert current.clustering_fields == list(spec.cluster_by)
        assert [f.name for f in table.schema] == [f.name for f in current.schema]


def test_history_days_set_the_partition_expiry(history: dict) -> None:
    """0 keeps partitions for ever; another value becomes the expiry of an existing table."""
    settings, spec = history["settings"], TABLES["ph_venues"]
    fields = spec.bigquery_schema()
    forever = settings.model_copy(
        update={"history_days": 0, "bq_dataset": settings.bq_dataset + "_forever"}
    )
    ensure_dataset(open_warehouse(forever))
    assert (
        ensure_history_table(open_warehouse(forever), spec, fields).time_partitioning.expiration_ms
        is None
    )
    month = forever.model_copy(update={"history_days": 30})
    assert (
        ensure_history_table(open_warehouse(month), spec, fields).time_partitioning.expiration_ms
        == 30 * 86_400_000
    )


def test_a_history_table_gains_columns_and_says_when_it_holds_hashed_pii(history: dict) -> None:
    """Hashes switched on add their columns (NULLABLE, earlier days have none) and label the
    table ``pii: hashed``; switched off again, the earlier days still hold them."""
    settings, spec = history["settings"], TABLES["ph_leads"]
    other = settings.model_copy(update={"bq_dataset": settings.bq_dataset + "_pii"})
    target = open_warehouse(other)
    ensure_dataset(target)
    plain = ensure_history_table(target, spec, spec.bigquery_schema(False))
    assert plain.labels["pii"] == "none"
    hashed = ensure_history_table(target, spec, spec.bigquery_schema(True))
    assert hashed.labels["pii"] == "hashed"
    added = {f.name: f.mode for f in hashed.schema}.items() - {
        f.name: f.mode for f in plain.schema
    }.items()
    assert added == {("email_sha256", "NULLABLE"), ("phone_sha256", "NULLABLE")}
    again = ensure_history_table(target, spec, spec.bigquery_schema(False))
    assert again.labels["pii"] == "hashed"
    assert [f.name for f in again.schema] == [f.name for f in hashed.schema]


def test_a_sync_from_mysql_for_another_day_is_refused(history: dict) -> None:
    before = table_states(history["settings"])
    with environment({"PARTYHELP_CLOCK_DATE": DAYS[-1].isoformat()}):
        state = partyhelp_bigquery_sync(sync_date=DAYS[0], tables=["ph_venues"], return_state=True)
    assert state.is_failed()
    assert (
        "a sync from MySQL is a snapshot of now, so its sync_date is today "
        f"({DAYS[-1]} in the reporting time zone), not {DAYS[0]}; to reload a kept day "
        f"use --from-exports {DAYS[0]}, for a range of days use backfill"
    ) in state.message
    assert table_states(history["settings"]) == before
    with pytest.raises(SyncDateError, match="needs the day of its kept exports"):
        sync_date_for(None, replay=True, today=DAYS[-1])


def test_rerunning_the_same_day_leaves_one_copy_of_each_row(history: dict) -> None:
    settings, last = history["settings"], DAYS[-1]
    state = sync_on(last, tables=["ph_venues", "ph_lead_purchases"])
    assert state.is_completed(), state.message
    for table in ("ph_venues", "ph_lead_purchases"):
        spec = TABLES[table]
        actual = _keyed(_rows(settings, spec.history_name, last), spec.primary_key)
        assert diff_tables(history["expected"][last][table], actual) == []
        assert len(_rows(settings, spec.history_name)) == sum(
            len(history["expected"][day][table]) for day in DAYS
        )


def test_a_replay_of_the_first_day_changes_only_its_partitions(history: dict) -> None:
    settings, first = history["settings"], DAYS[0]
    spec = TABLES["ph_venues"]
    # Empty day one's partition for real, so that the replay has to fill it again.
    bigquery_client(settings).query(
        f"DELETE FROM {settings.quoted_table_ref(spec.history_name)} "
        f"WHERE sync_date = '{first.isoformat()}'"
    ).result()
    others = {day: _rows(settings, spec.history_name, day) for day in DAYS[1:]}
    current = table_states(settings)[spec.name]
    state = partyhelp_bigquery_sync(
        sync_date=first, tables=[spec.name], from_exports=True, return_state=True
    )
    assert state.is_completed(), state.message
    assert state.result()["tables"][spec.name]["current_replaced"] is False
    refilled = _keyed(_rows(settings, spec.history_name, first), spec.primary_key)
    assert diff_tables(history["expected"][first][spec.name], refilled) == []
    assert {day: _rows(settings, spec.history_name, day) for day in DAYS[1:]} == others
    assert table_states(settings)[spec.name] == current


def test_a_failed_load_leaves_every_partition_and_the_current_table(history: dict) -> None:
    """A replay of day two whose first part BigQuery cannot read (a corrupt copy really
    written to GCS, listed by a manifest handed straight to the load)."""
    settings, spec = history["settings"], TABLES["ph_lead_purchases"]
    broken = with_corrupt_first_part(settings, manifests(settings, DAYS[1], spec.name)[-1])
    before = table_states(settings)
    with pytest.raises(LoadError, match=r"^ph_lead_purchases: BigQuery load failed"):
        replace_table(open_warehouse(settings), spec, broken, replace_current=True)
    assert table_states(settings) == before


# ---------------------------------------------------------------- the financial-period view


def financial_periods(purchases: dict[int, dict]) -> dict[tuple, tuple[int, Decimal, Decimal]]:
    """The view, computed independently: group key -> (purchases, revenue, average)."""
    groups: dict[tuple, list[Decimal]] = defaultdict(list)
    for row in purchases.values():
        moment = row["purchased_at"]
        period: tuple[Any, ...] = (None, None, None)
        if moment is not None:
            local = moment.astimezone(MELBOURNE).date()
            start = local.year if local.month >= 7 else local.year - 1
            period = (
                f"FY{start}-{(start + 1) % 100:02d}",
                (local.month - 7) % 12 // 3 + 1,
                local.replace(day=1),
            )
        key = (
            *period,
            row["occasion_type"],
            row["occasion_label"],
            row["venue_id"],
            row["venue_business_name"],
            row["venue_area_name"],
        )
        groups[key].append(row["amount_paid"] or Decimal(0))
    return {
        key: (
            len(amounts),
            sum(amounts, Decimal(0)),
            (sum(amounts, Decimal(0)) / len(amounts)).quantize(Decimal("0.01"), ROUND_HALF_UP),
        )
        for key, amounts in groups.items()
    }


def test_the_financial_period_view_equals_an_independent_computation(history: dict) -> None:
    settings = history["settings"]
    purchases = history["expected"][DAYS[-1]]["ph_lead_purchases"]
    expected = financial_periods(purchases)
    actual = {}
    for row in _rows(settings, SALES_BY_FINANCIAL_PERIOD.name):
        key = tuple(row[c.name] for c in SALES_BY_FINANCIAL_PERIOD.columns[:8])
        actual[key] = (row["purchases"], row["revenue"], row["average_sale"])
    assert actual == expected
    # The edges landed where Melbourne puts them, not where UTC does: 23:30 UTC on 30 June
    # is July there, the first quarter of FY2026-27.
    (late_june,) = [
        row
        for row in purchases.values()
        if row["purchased_at"] == dt.datetime(2026, 6, 30, 23, 30, tzinfo=dt.UTC)
    ]
    (key,) = financial_periods({0: late_june})
    assert key[:3] == ("FY2026-27", 1, dt.date(2026, 7, 1))
    assert actual[key][0] >= 1
    years = {key[0] for key in expected}
    assert {"FY2025-26", "FY2026-27", None} <= years
    assert sum(count for count, _, _ in expected.values()) == len(purchases)
    assert sum(count for key, (count, _, _) in expected.items() if key[0] is None) >= 3


def test_the_view_is_documented_in_bigquery(history: dict) -> None:
    settings = history["settings"]
    view = bigquery_client(settings).get_table(settings.table_ref(SALES_BY_FINANCIAL_PERIOD.name))
    assert view.description == SALES_BY_FINANCIAL_PERIOD.description
    assert {f.name: f.description for f in view.schema} == {
        c.name: c.description for c in SALES_BY_FINANCIAL_PERIOD.columns
    }


# ---------------------------------------------------------------- docs/queries.md, as written


def documented_queries() -> dict[str, str]:
    """Each query of ``docs/queries.md`` under its heading."""
    text = (ROOT / "docs" / "queries.md").read_text(encoding="utf-8")
    found = re.findall(r"^## (.+?)$.*?^```sql\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    return {heading: sql for heading, sql in found}


def run_documented(settings: Settings, heading: str, **parameters: Any) -> list[dict]:
    """The documented query under ``heading``, on this dataset, with its parameters."""
    sql = documented_queries()[heading].replace(
        "`PROJECT.DATASET.", f"`{settings.bq_project}.{settings.bq_dataset}."
    )
    config = bigquery.QueryJobConfig(
        query_parameters=[
            bigquery.ScalarQueryParameter(
                name, "INT64" if isinstance(value, int) else "DATE", value
            )
            for name, value in parameters.items()
        ]
    )
    return [dict(row.items()) for row in bigquery_client(settings).query(sql, config).result()]


def test_every_documented_query_is_tested() -> None:
    assert set(documented_queries()) == {
        "A venue's credit balance at each month's end",
        "Revenue by financial year and occasion",
        "The match funnel as at a given day",
        "Rows that changed between two days",
        "Is today normal?",  # these two: test_metrics.py
        "When did the source last change?",
    }


def test_query_a_venues_balance_at_each_months_end(history: dict) -> None:
    venues = {day: history["expected"][day]["ph_venues"] for day in DAYS}
    venue = min(venues[DAYS[-1]])  # renamed and richer on the last day
    rows = run_documented(
        history["settings"], "A venue's credit balance at each month's end", venue_id=venue
    )
    # October's last sync is its 31st; November's is the 1st.
    assert rows == [
        {
            "month": dt.date(2026, 10, 1),
            "as_at": DAYS[1],
            "business_name": venues[DAYS[1]][venue]["business_name"],
            "credit_balance": venues[DAYS[1]][venue]["credit_balance"],
        },
        {
            "month": dt.date(2026, 11, 1),
            "as_at": DAYS[2],
            "business_name": RENAMED,
            "credit_balance": venues[DAYS[1]][venue]["credit_balance"] + 100,
        },
    ]


def test_query_revenue_by_financial_year_and_occasion(history: dict) -> None:
    expected: dict[tuple, list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    for key, (count, revenue, _) in financial_periods(
        history["expected"][DAYS[-1]]["ph_lead_purchases"]
    ).items():
        expected[(key[0], key[4])][0] += count
        expected[(key[0], key[4])][1] += revenue
    rows = run_documented(history["settings"], "Revenue by financial year and occasion")
    assert {
        (r["financial_year"], r["occasion_label"]): [r["purchases"], r["revenue"]] for r in rows
    } == dict(expected)
    assert len(rows) == len(expected)


def test_query_the_match_funnel_as_at_a_day(history: dict) -> None:
    matches = history["expected"][DAYS[1]]["ph_lead_matches"].values()
    rows = run_documented(history["settings"], "The match funnel as at a given day", as_at=DAYS[1])
    assert rows == [
        {
            "matched": len(matches),
            "notified": sum(m["notified_at"] is not None for m in matches),
            "viewed": sum(m["viewed_at"] is not None for m in matches),
            "purchased": sum(m["purchased_at"] is not None for m in matches),
        }
    ]


def _without_day(rows: Iterator[dict] | list[dict]) -> set[tuple]:
    return {tuple(sorted((k, v) for k, v in row.items() if k != "sync_date")) for row in rows}


def test_query_rows_that_changed_between_two_days(history: dict) -> None:
    before, after = (history["expected"][day]["ph_leads"].values() for day in DAYS[1:])
    changed = run_documented(
        history["settings"], "Rows that changed between two days", from_day=DAYS[1], to_day=DAYS[2]
    )
    reverted = run_documented(
        history["settings"], "Rows that changed between two days", from_day=DAYS[2], to_day=DAYS[1]
    )
    assert _without_day(changed) == _without_day(after) - _without_day(before)
    assert _without_day(reverted) == _without_day(before) - _without_day(after)
    assert len(changed) == 1 and changed[0]["guest_count"] == 999  # the changed lead
    assert len(reverted) == 2  # its old version, and the deleted lead
