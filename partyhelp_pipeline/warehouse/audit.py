"""``ph_sync_runs``: one row per table and run, appended when a run ends; and the last
published count, which the row-drop check compares a new load with."""

from __future__ import annotations

from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import bigquery

from partyhelp_pipeline import bq_jobs
from partyhelp_pipeline.spec import AUDIT_TABLE
from partyhelp_pipeline.warehouse.labels import (
    current_job_labels,
    labels_differ,
    resource_labels,
)
from partyhelp_pipeline.warehouse.target import (
    Warehouse,
    add_missing_columns,
    ensure_dataset,
    run_query,
    schema_fields,
)


def ensure_audit_table(warehouse: Warehouse) -> bigquery.Table:
    """Create the ``ph_sync_runs`` audit table if it is absent, add the columns it lacks,
    and set its labels when they differ."""
    client, calls = warehouse.client, warehouse.calls()
    table = bigquery.Table(
        warehouse.table_ref(AUDIT_TABLE.name), schema=schema_fields(AUDIT_TABLE.columns)
    )
    table.description = AUDIT_TABLE.description
    table.labels = labels = resource_labels(pii=False)
    table = client.create_table(table, exists_ok=True, **calls)  # the existing one, if any
    table = add_missing_columns(warehouse, table, AUDIT_TABLE.columns)
    if not labels_differ(table.labels, labels):
        return table
    table.labels = labels
    return client.update_table(table, ["labels"], **calls)


def append_audit_rows(warehouse: Warehouse, rows: list[dict[str, Any]]) -> None:
    """Append rows to ``ph_sync_runs`` with a load job (atomic, free, no streaming buffer)."""
    if not rows:
        return
    client = warehouse.client
    ensure_dataset(warehouse)  # a run that failed before any load may be the first one
    ensure_audit_table(warehouse)
    config = bigquery.LoadJobConfig(
        schema=schema_fields(AUDIT_TABLE.columns),
        source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
        write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
        labels=current_job_labels(),
    )
    # The id holds the run's attempt (``bq_jobs.job_run``): a retried task appends nothing
    # twice, a new attempt of the run appends its own rows. (An upload: its own resumable
    # protocol retries, ``load_table_from_json`` takes a ``timeout`` but no ``retry``.)
    job = bq_jobs.start_job(
        client,
        bq_jobs.job_id("audit", AUDIT_TABLE.name, rows),
        lambda i: client.load_table_from_json(
            rows,
            warehouse.table_ref(AUDIT_TABLE.name),
            job_config=config,
            job_id=i,
            timeout=warehouse.window,
        ),
        what=f"{AUDIT_TABLE.name}: audit append",
        window=warehouse.window,
    )
    bq_jobs.wait_for(job, warehouse.window)


def last_published_rows(warehouse: Warehouse, table: str) -> int | None:
    """The rows of the table's last published (Completed, current table replaced) run, as
    ``ph_sync_runs`` records it; None before the first."""
    sql = (
        f"SELECT rows_loaded FROM {warehouse.quoted_table_ref(AUDIT_TABLE.name)}\n"
        "WHERE table_name = @table AND status = 'Completed' AND rows_loaded IS NOT NULL\n"
        "AND IFNULL(current_replaced, TRUE)\n"
        "ORDER BY ended_at DESC LIMIT 1"
    )
    config = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter("table", "STRING", table)]
    )
    try:
        rows = list(run_query(warehouse, sql, config))
    except gexc.NotFound:  # no audit table yet: nothing was published
        return None
    return int(rows[0]["rows_loaded"]) if rows else None
