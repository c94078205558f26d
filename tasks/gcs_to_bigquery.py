"""The BigQuery tasks: replace a table from its manifest, refresh the view, append the audit.

Each task resolves its settings once (``runtime_settings``) into one ``Warehouse`` (a client
and the values the warehouse reads), which it hands down.

Every BigQuery job they start carries the labels ``pipeline``, ``table``, ``sync_date`` and
``flow_run`` (``warehouse.labels.job_labels``): the tasks know the flow run, the package
does not.
Each job that writes gets an id of the flow run and its attempt (``bq_jobs.job_run``), so a
retried task attaches to the jobs an earlier try started instead of running them twice.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any

from prefect import task
from prefect.runtime import flow_run

from partyhelp_pipeline import bq_jobs
from partyhelp_pipeline import manifest as mf
from partyhelp_pipeline.clients import storage_client
from partyhelp_pipeline.logs import get_logger
from partyhelp_pipeline.spec import AUDIT_TABLE, TABLES, VIEWS
from partyhelp_pipeline.spec.tables import FRESHNESS_VIEW
from partyhelp_pipeline.warehouse import audit, labels, views
from partyhelp_pipeline.warehouse.replace import LoadResult, replace_table
from partyhelp_pipeline.warehouse.target import ensure_dataset, open_warehouse
from tasks.locks import publish_lock
from tasks.options import RETRY_OPTIONS, runtime_settings


@contextlib.contextmanager
def bigquery_jobs(table: str, sync_date: dt.date) -> Iterator[None]:
    """The jobs started inside: labelled with the table, day and flow run, and with ids of
    the flow run and its attempt (``flow_run.run_count``: a retry from the UI is a new
    attempt, a task's retry is not)."""
    run_id = flow_run.get_id()
    with (
        labels.labelled_jobs(labels.job_labels(table, sync_date, run_id)),
        bq_jobs.job_run(run_id, flow_run.run_count),
    ):
        yield


@task(name="load", task_run_name="load-{manifest.table}", **RETRY_OPTIONS)
def load_table(
    manifest: mf.Manifest,
    allow_row_drop: bool = False,
    replace_current: bool = False,
    allow_stale: bool = False,
    judge_freshness: bool = True,
) -> LoadResult:
    """Load the manifest's parts, verified against the source, into the day's history
    partition and (unless the day is older than it) the current table."""
    settings = runtime_settings()
    mf.verify_parts(storage_client(settings), manifest)
    warehouse = open_warehouse(settings)
    ensure_dataset(warehouse)  # a read once ``prepare_dataset`` has created it
    # One publish of a table at a time, across runs (two command-line runs of one day).
    with (
        bigquery_jobs(manifest.table, manifest.sync_date),
        publish_lock(settings, manifest.table),
    ):
        result = replace_table(
            warehouse,
            TABLES[manifest.table],
            manifest,
            allow_row_drop,
            replace_current,
            allow_stale,
            judge_freshness,
        )
    if result.freshness_warning:
        get_logger().warning(result.freshness_warning)
    return result


@task(name="prepare-dataset", task_run_name="prepare-dataset", **RETRY_OPTIONS)
def prepare_dataset() -> str:
    """Create the dataset once, before the tables load (they would race to create it)."""
    return str(ensure_dataset(open_warehouse(runtime_settings())).dataset_id)


@task(name="refresh-view", task_run_name="refresh-view-{view}", **RETRY_OPTIONS)
def refresh_view(view: str, sync_date: dt.date) -> str:
    """CREATE OR REPLACE one view (its job labelled with ``sync_date``)."""
    warehouse = open_warehouse(runtime_settings())
    spec = next(v for v in VIEWS if v.name == view)
    with bigquery_jobs(view, sync_date):
        return views.refresh_view(warehouse, spec)


@task(name="record-audit", **RETRY_OPTIONS)
def record_audit(rows: list[dict[str, Any]]) -> int:
    """Append this run's rows to ``ph_sync_runs``, then refresh ``ph_sync_freshness``."""
    if not rows:
        return 0
    warehouse = open_warehouse(runtime_settings())
    day = dt.date.fromisoformat(str(rows[0]["sync_date"]))  # the rows are JSON: ISO text
    with bigquery_jobs(AUDIT_TABLE.name, day):
        audit.append_audit_rows(warehouse, rows)
    try:
        with bigquery_jobs(FRESHNESS_VIEW.name, day):
            views.refresh_freshness_view(warehouse)
    except Exception as exc:  # the rows are in, the next run refreshes it: not worth a retry
        get_logger().warning(
            "could not refresh %s (the next run will): %s", FRESHNESS_VIEW.name, exc
        )
    return len(rows)
