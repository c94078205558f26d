"""Publish a checked staging table: the row-drop check, the atomic copy over the current
table (WRITE_TRUNCATE: a failure leaves the previous table as it was), the check of what
was published, and the staging table's cleanup."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable

from google.api_core import exceptions as gexc
from google.cloud import bigquery

from partyhelp_pipeline import bq_jobs
from partyhelp_pipeline.errors import (
    ReconciliationError,
    RowDropError,
    StaleSourceError,
    is_transient,
)
from partyhelp_pipeline.freshness import SourceFreshness, stale_message
from partyhelp_pipeline.manifest import Manifest
from partyhelp_pipeline.spec import TableSpec
from partyhelp_pipeline.warehouse.labels import current_job_labels, loaded_table_labels
from partyhelp_pipeline.warehouse.target import Warehouse, document_table, job_error, run_query


def published_day(warehouse: Warehouse, table: str) -> dt.date | None:
    """The ``sync_date`` the current table holds, None when it is absent or empty: the
    table itself says which day it is, whatever the audit trail holds."""
    sql = f"SELECT MAX(sync_date) AS day FROM {warehouse.quoted_table_ref(table)}"
    try:
        rows = list(run_query(warehouse, sql))
    except gexc.NotFound:
        return None
    day = rows[0]["day"] if rows else None
    return day if isinstance(day, dt.date) else None


def check_row_drop(
    table: str, previous: int | None, rows: int, max_drop_percent: int, allow: bool
) -> bool:
    """Whether ``rows`` fall more than ``max_drop_percent`` below ``previous``; refused
    (``RowDropError``, naming both counts) unless ``allow``."""
    if not previous or rows >= previous * (100 - max_drop_percent) / 100:
        return False
    if allow:
        return True
    drop = 100 * (previous - rows) / previous
    raise RowDropError(
        f"{table}: {rows} rows would replace the {previous} last published, a drop of "
        f"{drop:.0f}% (PARTYHELP_MAX_ROW_DROP_PERCENT={max_drop_percent}); not published. "
        "For a deliberate purge run again with --allow-row-drop",
        table=table,
    )


def check_freshness(
    table: str, freshness: SourceFreshness | None, allow: bool, enforced: Callable[[], bool]
) -> str | None:
    """Refuse a stale table (``StaleSourceError``, naming its newest row and age) unless
    ``allow``, or unless ``enforced()`` says the limit does not apply yet; otherwise the
    warning to give, if any (a stale table published, or one past ``warn_after``)."""
    if freshness is None or freshness.status not in ("warn", "stale"):
        return None
    message = stale_message(table, freshness)
    if freshness.status == "warn":
        return message
    if allow:
        return f"{message}; published anyway (--allow-stale)"
    if not enforced():
        return (
            f"{message}; published: no published day of {table} has been fresh yet, so "
            "error_after is not enforced (PARTYHELP_MAX_SOURCE_AGE_HOURS enforces a limit "
            "from the first run)"
        )
    raise StaleSourceError(
        f"{message}; not published. If the source is right (a quiet period), run again "
        "with --allow-stale",
        table=table,
    )


def copy_over_current(warehouse: Warehouse, spec: TableSpec, staging: str) -> bigquery.CopyJob:
    """Replace the reporting table with the checked staging table, atomically."""
    client, calls, final = warehouse.client, warehouse.calls(), warehouse.table_ref(spec.name)
    with contextlib.suppress(gexc.NotFound):  # a first copy creates it with staging's layout
        table = client.get_table(final, **calls)
        if (table.clustering_fields or []) != list(spec.cluster_by):
            # Real BigQuery refuses a copy onto a table clustered otherwise than its source.
            table.clustering_fields = list(spec.cluster_by) or None
            client.update_table(table, ["clustering_fields"], **calls)
    config = bigquery.CopyJobConfig(
        write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE, labels=current_job_labels()
    )
    try:
        copy_job = bq_jobs.start_job(
            client,
            bq_jobs.job_id("publish", spec.name, staging, final),
            lambda i: client.copy_table(staging, final, job_config=config, job_id=i, **calls),
            what=f"{spec.name}: copy",
            window=warehouse.window,
        )
        return bq_jobs.wait_for(copy_job, warehouse.window)
    except (gexc.GoogleAPIError, OSError) as exc:
        raise job_error(spec.name, "copy", exc) from None


def check_current(warehouse: Warehouse, spec: TableSpec, manifest: Manifest) -> None:
    """Document the published table and check that it holds the manifest's rows."""
    table = document_table(
        warehouse,
        warehouse.table_ref(spec.name),
        spec.description,
        {f["name"]: f["description"] for f in manifest.bigquery_schema},
        loaded_table_labels(spec, manifest),
    )
    if table.num_rows != manifest.rows:
        raise ReconciliationError(
            f"{spec.name}: BigQuery holds {table.num_rows} rows after the load but the "
            f"manifest lists {manifest.rows}",
            table=spec.name,
        )


def keep_staging(warehouse: Warehouse, staging: str, exc: BaseException) -> bool:
    """Whether a failed replacement keeps its staging table: after a transient failure, when
    a load wrote rows into it (perhaps one whose answer was lost), for the retry, whose loads
    attach to this try's jobs; it expires after a day if no retry comes. Else (a load that
    failed, a refused reconciliation) it is of no use."""
    if not (isinstance(exc, Exception) and is_transient(exc)):
        return False
    try:
        return bool(warehouse.client.get_table(staging, **warehouse.calls()).num_rows)
    except (gexc.GoogleAPIError, OSError):
        return False


def drop_staging(warehouse: Warehouse, staging: str) -> None:
    """Drop the staging table, if it is there."""
    # A stray staging table is harmless: the next export's staging name differs, and it
    # expires after a day.
    with contextlib.suppress(gexc.GoogleAPIError, OSError):
        warehouse.client.delete_table(staging, not_found_ok=True, **warehouse.calls())
