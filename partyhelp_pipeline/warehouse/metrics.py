"""``ph_sync_metrics``: one row per table and published day (rows, keys added and removed
since the previous published day, money totals, NULL counts, source freshness), and the
``ph_sync_health`` view over its last 90 days.

The metrics of a day are measured from the day's history partition, already loaded
(``history.py``), against the latest earlier partition of the same history table. A day's
row is replaced in one transaction (DELETE the pair, INSERT the row), so a rerun or a
replay of a day leaves one row for it and never touches another day or table.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import bigquery

from partyhelp_pipeline import anomalies, bq_jobs
from partyhelp_pipeline.clock import parse_iso
from partyhelp_pipeline.health import TableHealth, TableMetrics
from partyhelp_pipeline.manifest import Manifest
from partyhelp_pipeline.spec import METRICS_TABLE, TableSpec
from partyhelp_pipeline.warehouse.labels import labels_differ, resource_labels
from partyhelp_pipeline.warehouse.target import (
    Warehouse,
    add_missing_columns,
    run_query,
    schema_fields,
)

ROW_COUNT = "row_count"  # the count among a manifest's totals; the other keys are money
# The columns a metrics row is written with (``TableMetrics.to_row``): all but recorded_at.
_ROW_COLUMNS = tuple(c for c in METRICS_TABLE.columns if c.name != "recorded_at")


# One thread of the process creates or writes ph_sync_metrics at a time: every table's health
# task writes its row at once, and BigQuery queues concurrent DML on one table where the
# emulator fails it ("Failed to commit"); a row each, the wait is nothing.
_ONE_WRITER = threading.Lock()


def ensure_metrics_table(warehouse: Warehouse) -> bigquery.Table:
    """Create ``ph_sync_metrics`` if it is absent (DAY partitions on ``sync_date``,
    clustered by ``table_name``), add the columns it lacks, and set its labels. An existing
    table is read, not created again, and one thread of the process creates it: the tables'
    health tasks run at once, and the emulator fails concurrent creates (400, "Failed to
    commit") where BigQuery answers 409 (a task on another Dask worker would retry)."""
    client, calls = warehouse.client, warehouse.calls()
    with _ONE_WRITER:
        try:
            table = client.get_table(warehouse.table_ref(METRICS_TABLE.name), **calls)
        except gexc.NotFound:
            table = _create_metrics_table(warehouse)
    table = add_missing_columns(warehouse, table, METRICS_TABLE.columns)
    labels = resource_labels(pii=False)
    if not labels_differ(table.labels, labels):
        return table
    table.labels = labels
    return client.update_table(table, ["labels"], **calls)


def _create_metrics_table(warehouse: Warehouse) -> bigquery.Table:
    client, calls = warehouse.client, warehouse.calls()
    wanted = bigquery.Table(
        warehouse.table_ref(METRICS_TABLE.name), schema=schema_fields(METRICS_TABLE.columns)
    )
    wanted.time_partitioning = bigquery.TimePartitioning(
        type_=bigquery.TimePartitioningType.DAY, field="sync_date"
    )
    wanted.clustering_fields = ["table_name"]
    wanted.description = METRICS_TABLE.description
    wanted.labels = resource_labels(pii=False)
    return client.create_table(wanted, exists_ok=True, **calls)  # another's, if it won


def _parameters(**values: tuple[str, Any]) -> bigquery.QueryJobConfig:
    """A query's named parameters: name -> (BigQuery type, value)."""
    return bigquery.QueryJobConfig(
        query_parameters=[
            bigquery.ScalarQueryParameter(name, kind, value)
            for name, (kind, value) in values.items()
        ]
    )


def measure_day(
    warehouse: Warehouse, spec: TableSpec, manifest: Manifest, mode: str = "sync"
) -> TableMetrics:
    """The table's metrics on the manifest's day, from its loaded history partition and the
    manifest: two queries (the day's counts; its keys against the previous published day)."""
    rows, null_counts = _day_counts(warehouse, spec, manifest)
    previous, added, removed = _key_changes(warehouse, spec, manifest.sync_date)
    freshness = manifest.freshness or {}  # None: a manifest written before freshness existed
    return TableMetrics(
        sync_date=manifest.sync_date,
        table_name=spec.name,
        rows=rows,
        rows_added=added,
        rows_removed=removed,
        previous_sync_date=previous,
        money_totals={
            name: _cents_text(cents)
            for name, cents in sorted(manifest.exported_totals.items())
            if name != ROW_COUNT and cents is not None
        },
        null_counts=null_counts,
        freshness_column=freshness.get("column"),
        newest_at=_moment(freshness.get("newest_at")),
        snapshot_at=_moment(freshness.get("snapshot_at")),
        freshness_hours=freshness.get("age_hours"),
        freshness_status=freshness.get("status"),
        mode=mode,
        flow_run_id=manifest.flow_run_id,
        export_id=manifest.export_id,
    )


def _cents_text(cents: int) -> str:
    """``123450`` cents as ``"1234.50"``."""
    return format(Decimal(int(cents)).scaleb(-2), "f")


def _moment(text: str | None) -> dt.datetime | None:
    return parse_iso(text) if text else None


def _day_counts(
    warehouse: Warehouse, spec: TableSpec, manifest: Manifest
) -> tuple[int, dict[str, int]]:
    """The day's rows and the NULL cells of each output column, in one scan."""
    names = [field["name"] for field in manifest.bigquery_schema]
    # Positional aliases: a column's own name could clash with the count's.
    counts = "".join(f",\n    COUNTIF(`{name}` IS NULL) AS n{i}" for i, name in enumerate(names))
    sql = (
        f"SELECT\n    COUNT(*) AS row_count{counts}\n"
        f"FROM {warehouse.quoted_table_ref(spec.history_name)}\n"
        "WHERE sync_date = @sync_date"
    )
    config = _parameters(sync_date=("DATE", manifest.sync_date))
    (row,) = list(run_query(warehouse, sql, config))
    return int(row["row_count"]), {name: int(row[f"n{i}"]) for i, name in enumerate(names)}


def _key_changes(
    warehouse: Warehouse, spec: TableSpec, day: dt.date
) -> tuple[dt.date | None, int | None, int | None]:
    """``(previous published day, keys added, keys removed)`` of ``day`` against the latest
    earlier partition; ``(None, None, None)`` on the table's first published day."""
    history, key = warehouse.quoted_table_ref(spec.history_name), f"`{spec.primary_key}`"
    sql = "\n".join(
        [
            f"WITH previous AS (SELECT MAX(sync_date) AS day FROM {history} "
            "WHERE sync_date < @sync_date),",
            f"today AS (SELECT DISTINCT {key} AS k FROM {history} WHERE sync_date = @sync_date),",
            f"earlier AS (SELECT DISTINCT {key} AS k FROM {history} "
            "WHERE sync_date = (SELECT day FROM previous))",
            "SELECT (SELECT day FROM previous) AS previous_sync_date,",
            "    COUNTIF(earlier.k IS NULL) AS rows_added,",
            "    COUNTIF(today.k IS NULL) AS rows_removed",
            "FROM today FULL OUTER JOIN earlier ON today.k = earlier.k",
        ]
    )
    (row,) = list(run_query(warehouse, sql, _parameters(sync_date=("DATE", day))))
    previous = row["previous_sync_date"]
    if previous is None:
        return None, None, None
    return previous, int(row["rows_added"]), int(row["rows_removed"])


def write_metrics(warehouse: Warehouse, metrics: TableMetrics) -> None:
    """Store the day's metrics as the one row of its table and day: DELETE the pair and
    INSERT the row in one transaction, under a job id of its input (a retried task attaches
    to the job an earlier try started instead of writing again)."""
    ensure_metrics_table(warehouse)
    table = warehouse.quoted_table_ref(METRICS_TABLE.name)
    columns = [c.name for c in _ROW_COLUMNS]
    sql = "\n".join(
        [
            "BEGIN TRANSACTION;",
            f"DELETE FROM {table} WHERE sync_date = @sync_date AND table_name = @table_name;",
            f"INSERT INTO {table} ({', '.join(f'`{c}`' for c in columns)}, `recorded_at`)",
            f"SELECT {', '.join(f'@{c}' for c in columns)}, CURRENT_TIMESTAMP();",
            "COMMIT TRANSACTION;",
        ]
    )
    row = metrics.to_row()
    config = _parameters(**{c.name: (c.type, row[c.name]) for c in _ROW_COLUMNS})
    job_id = bq_jobs.job_id("metrics", metrics.table_name, sql, row)
    what = f"{metrics.table_name}: metrics of {metrics.sync_date}"
    with _ONE_WRITER:
        run_query(warehouse, sql, config, job_id, what=what)


def metrics_history(
    warehouse: Warehouse, table: str, before: dt.date, days: int
) -> list[TableMetrics]:
    """The table's stored metrics with ``sync_date`` in ``[before - days, before)``, oldest
    first; none while ``ph_sync_metrics`` does not exist."""
    return metrics_histories(warehouse, [table], before, days)[table]


def metrics_histories(
    warehouse: Warehouse, tables: Sequence[str], before: dt.date, days: int
) -> dict[str, list[TableMetrics]]:
    """``metrics_history`` of several tables, in one query."""
    sql = (
        f"SELECT * FROM {warehouse.quoted_table_ref(METRICS_TABLE.name)}\n"
        "WHERE table_name IN UNNEST(@tables) AND sync_date >= @first AND sync_date < @before\n"
        "ORDER BY sync_date"
    )
    config = bigquery.QueryJobConfig(
        query_parameters=[
            bigquery.ArrayQueryParameter("tables", "STRING", list(tables)),
            bigquery.ScalarQueryParameter("first", "DATE", before - dt.timedelta(days=days)),
            bigquery.ScalarQueryParameter("before", "DATE", before),
        ]
    )
    found: dict[str, list[TableMetrics]] = {table: [] for table in tables}
    try:
        rows = list(run_query(warehouse, sql, config))
    except gexc.NotFound:  # no metrics table yet: no history
        return found
    for row in rows:
        metrics = TableMetrics.from_row(row)
        found.setdefault(metrics.table_name, []).append(metrics)
    return found


def was_fresh(warehouse: Warehouse, table: str, error_after_hours: float) -> bool:
    """Whether any stored day of the table had its source at most ``error_after_hours``
    old; False while ``ph_sync_metrics`` does not exist."""
    sql = (
        "SELECT COUNTIF(freshness_hours <= @limit) AS fresh_days\n"
        f"FROM {warehouse.quoted_table_ref(METRICS_TABLE.name)}\n"
        "WHERE table_name = @table"
    )
    config = _parameters(table=("STRING", table), limit=("FLOAT64", float(error_after_hours)))
    try:
        rows = list(run_query(warehouse, sql, config))
    except gexc.NotFound:
        return False
    return bool(rows and rows[0]["fresh_days"])


def record_day(
    warehouse: Warehouse,
    spec: TableSpec,
    manifest: Manifest,
    mode: str,
    *,
    window_days: int,
    min_days: int,
) -> TableHealth:
    """Measure the manifest's published day, judge it against the table's published days
    of the ``window_days`` before (``anomalies.check_metrics``), and store it, its flagged
    metrics named, as the table's one row of the day."""
    measured = measure_day(warehouse, spec, manifest, mode)
    history = metrics_history(warehouse, spec.name, manifest.sync_date, window_days)
    checks = anomalies.check_metrics(measured, history, min_days)
    flagged = tuple(c.metric for c in anomalies.anomalies(checks))
    measured = dataclasses.replace(measured, anomalies=flagged)
    write_metrics(warehouse, measured)
    return TableHealth(measured, tuple(checks))
