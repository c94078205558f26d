"""``ph_<table>_history``: one partition per ``sync_date`` beside each current table.

The checked staging table replaces its day's partition in one multi-statement transaction
(DELETE the day, INSERT the staging rows), so a rerun of a day never duplicates a row and a
failure changes nothing.
"""

from __future__ import annotations

import datetime as dt

from google.api_core import exceptions as gexc
from google.cloud import bigquery

from partyhelp_pipeline import bq_jobs
from partyhelp_pipeline.errors import ReconciliationError
from partyhelp_pipeline.manifest import Manifest
from partyhelp_pipeline.spec import TableSpec
from partyhelp_pipeline.warehouse.labels import labels_differ, pii_labels
from partyhelp_pipeline.warehouse.target import (
    Warehouse,
    add_missing_columns,
    job_error,
    run_query,
    schema_fields,
)

DAY_MS = 86_400_000


def history_layout(warehouse: Warehouse) -> bigquery.TimePartitioning:
    """DAY partitions on ``sync_date``, expiring after ``PARTYHELP_HISTORY_DAYS`` (0: never)."""
    days = warehouse.history_days
    return bigquery.TimePartitioning(
        type_=bigquery.TimePartitioningType.DAY,
        field="sync_date",
        expiration_ms=days * DAY_MS if days else None,
    )


def ensure_history_table(
    warehouse: Warehouse, spec: TableSpec, fields: list[dict[str, str]]
) -> bigquery.Table:
    """Create ``ph_<table>_history`` if absent; add the columns of ``fields`` it lacks and
    set its partition expiration when it differs."""
    client, calls = warehouse.client, warehouse.calls()
    wanted = bigquery.Table(warehouse.table_ref(spec.history_name), schema=schema_fields(fields))
    wanted.time_partitioning = layout = history_layout(warehouse)
    wanted.clustering_fields = list(spec.cluster_by) or None
    wanted.description = (
        f"History of {spec.name}: the table as each day's sync saw it, one "
        f"partition per sync_date. {spec.description}"
    )
    wanted.labels = pii_labels(spec, [f["name"] for f in fields])
    table = client.create_table(wanted, exists_ok=True, **calls)  # the existing one, if any
    table = add_missing_columns(warehouse, table, fields)
    # Earlier days keep their hashed columns when the hashes are switched off: the table's
    # own columns say whether it holds PII.
    labels = pii_labels(spec, [f.name for f in table.schema])
    if labels_differ(table.labels, labels):
        table.labels = labels
        table = client.update_table(table, ["labels"], **calls)
    if (table.time_partitioning and table.time_partitioning.expiration_ms) != layout.expiration_ms:
        table.time_partitioning = layout  # a PATCH; a null expiration removes it
        table = client.update_table(table, ["time_partitioning"], **calls)
    return table


def _day_parameter(day: dt.date) -> bigquery.QueryJobConfig:
    return bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter("sync_date", "DATE", day.isoformat())]
    )


def replace_history_partition(
    warehouse: Warehouse, spec: TableSpec, manifest: Manifest, staging_name: str
) -> None:
    """Replace the day's partition with the checked staging rows, in one transaction: the
    day's old rows go and the new ones come together, or nothing changes."""
    ensure_history_table(warehouse, spec, manifest.bigquery_schema)
    day = manifest.sync_date
    columns = ", ".join(f"`{f['name']}`" for f in manifest.bigquery_schema)
    history = warehouse.quoted_table_ref(spec.history_name)
    sql = "\n".join(
        [
            "BEGIN TRANSACTION;",
            f"DELETE FROM {history} WHERE sync_date = @sync_date;",
            f"INSERT INTO {history} ({columns})",
            f"SELECT {columns} FROM {warehouse.quoted_table_ref(staging_name)};",
            "COMMIT TRANSACTION;",
        ]
    )
    # The input: this export's checked rows into this day's partition.
    job_id = bq_jobs.job_id(
        "history", spec.name, manifest.export_id, staging_name, sql, day.isoformat()
    )
    what = f"{spec.name}: history transaction"
    try:
        run_query(warehouse, sql, _day_parameter(day), job_id, what=what)
    except (gexc.GoogleAPIError, OSError) as exc:
        raise job_error(spec.name, f"history partition {day}", exc) from None
    held = history_rows(warehouse, spec, day)
    if held != manifest.rows:
        raise ReconciliationError(
            f"{spec.history_name}: partition {day} holds {held} rows after "
            f"the load but the manifest lists {manifest.rows}",
            table=spec.name,
        )


def history_rows(warehouse: Warehouse, spec: TableSpec, day: dt.date) -> int:
    """Rows of one day's partition of the table's history."""
    sql = (
        f"SELECT COUNT(*) AS n FROM {warehouse.quoted_table_ref(spec.history_name)} "
        "WHERE sync_date = @sync_date"
    )
    return int(next(iter(run_query(warehouse, sql, _day_parameter(day))))["n"])
