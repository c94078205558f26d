"""BigQuery side: dataset, atomic table replacement from a manifest, view, audit rows.

A table is replaced in three steps so that nothing unverified is ever visible:
load the manifest's parts into a staging table, check its row count and money sums
against the manifest (which holds the source's figures), then copy it over the
reporting table with WRITE_TRUNCATE, an atomic replacement. A failure at any step
leaves the previous table as it was.

Beside each current table, ``ph_<table>_history`` keeps one partition per ``sync_date``.
The checked staging table replaces its day's partition in one multi-statement transaction
(DELETE the day, INSERT the staging rows), so a rerun of a day never duplicates a row and
a failure changes nothing. The current table is replaced only by its newest day: a replay
of an older day fills its history partition and leaves the current table alone, unless
``replace_current`` asks.

Every job that writes has a deterministic id (``bq_jobs``): a retried task attaches to the
jobs an earlier try started instead of running them twice. The staging table expires after
a day, so a killed run leaves nothing behind for ever.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import bigquery

from partyhelp_pipeline import bq_jobs
from partyhelp_pipeline.clients import bigquery_client, bigquery_window, query_options
from partyhelp_pipeline.errors import LoadError, ReconciliationError, RowDropError, is_transient
from partyhelp_pipeline.logs import get_logger
from partyhelp_pipeline.manifest import Manifest
from partyhelp_pipeline.settings import Settings, validate_table
from partyhelp_pipeline.spec import AUDIT_TABLE, Column, PeriodViewSpec, TableSpec, ViewSpec
from partyhelp_pipeline.spec.sql import (
    bigquery_totals_query,
    freshness_query,
    period_view_query,
    view_query,
)
from partyhelp_pipeline.spec.tables import FRESHNESS_VIEW

DATASET_DESCRIPTION = (
    "Partyhelp reporting tables, replaced daily by the partyhelp-bigquery-sync Prefect flow "
    "from the Partyhelp MySQL database. Raw Avro exports are kept in GCS for audit."
)


def schema_fields(columns: Iterable[Column] | list[dict[str, str]]) -> list[bigquery.SchemaField]:
    """BigQuery schema fields from spec columns or their REST representation."""
    return [
        bigquery.SchemaField.from_api_repr(c if isinstance(c, dict) else c.bigquery_field())
        for c in columns
    ]


def run_query(
    settings: Settings,
    sql: str,
    config: bigquery.QueryJobConfig | None = None,
    job_id: str | None = None,
    what: str = "query",
) -> Iterable[Any]:
    """Run one query to its end, every retry within ``PARTYHELP_BQ_RETRY_SECONDS``; the
    job carries the labels of ``labelled_jobs`` (added to ``config``'s own). A query that
    writes passes its ``bq_jobs.job_id``: a retry attaches to the job an earlier try
    started (``bq_jobs.start_job``) instead of running it twice; ``what`` names it."""
    if labels := current_job_labels():
        config = config or bigquery.QueryJobConfig()
        config.labels = {**labels, **config.labels}
    options = query_options(settings)
    client = bigquery_client(settings)
    if job_id is None:
        return client.query(sql, job_config=config, **options).result(**options)
    # A job of our own id is never re-run by the library (it would need a new id): a failed
    # one is re-run under the next try id, by the task's retry.
    options["job_retry"] = None
    job = bq_jobs.start_job(
        client,
        job_id,
        lambda i: client.query(sql, job_config=config, job_id=i, **options),
        what=what,
    )
    return job.result(**options)


def ensure_dataset(settings: Settings) -> bigquery.Dataset:
    """Create the dataset in the configured location if it is absent; set its ``source``
    and ``pii`` labels (``resource_labels``) when they differ."""
    client = bigquery_client(settings)
    reference = f"{settings.bq_project}.{settings.bq_dataset}"
    labels = resource_labels(settings.include_pii_hashes)
    with contextlib.suppress(gexc.NotFound):
        existing = client.get_dataset(reference)  # a read: concurrent loads need not write
        if not labels_differ(existing.labels, labels):
            return existing
        # A new object, without the read's etag: concurrent loads may all update (a PATCH of
        # the same labels), none fails on a precondition; other labels are kept.
        patch = bigquery.Dataset(reference)
        patch.labels = labels
        return client.update_dataset(patch, ["labels"])
    dataset = bigquery.Dataset(reference)
    dataset.location = settings.bq_location
    dataset.description = DATASET_DESCRIPTION
    dataset.labels = labels
    return client.create_dataset(dataset, exists_ok=True)


@dataclass(frozen=True)
class LoadResult:
    """What one table's replacement did."""

    table: str
    manifest_uri: str
    export_id: str
    rows_loaded: int
    load_job_id: str  # several, comma-separated, when the parts took more than one job
    copy_job_id: str
    started_at: str
    finished_at: str
    bigquery_totals: dict[str, int]
    previous_rows: int | None = None  # the last published count (ph_sync_runs)
    row_drop_allowed: bool = False  # published although it fell past the allowed drop
    current_replaced: bool = True  # False: only the day's history partition was replaced
    current_day: str | None = None  # the current table's sync_date before this load


def _job_error(table: str, step: str, exc: Exception) -> LoadError:
    errors = getattr(exc, "errors", None) or []
    detail = "; ".join(str(e.get("message", e)) for e in errors if isinstance(e, dict))
    message = detail or str(exc)
    return LoadError(
        f"{table}: BigQuery {step} failed: {message}", transient=is_transient(exc), table=table
    )


def _staging_name(manifest: Manifest) -> str:
    return validate_table(
        f"_staging_{manifest.table}_" + re.sub(r"[^A-Za-z0-9_]", "_", manifest.export_id)
    )


def bigquery_totals(settings: Settings, table: str, spec: TableSpec) -> dict[str, int]:
    """Row count and money sums (in cents) of a table in the dataset: one aggregate query."""
    sql = bigquery_totals_query(spec, settings.quoted_table_ref(table))
    row = next(iter(run_query(settings, sql)))
    totals = {"row_count": int(row["row_count"])}
    for column in spec.money_columns:
        value = row[column.name]
        totals[column.name] = int((Decimal(value or 0) * 100).to_integral_exact())
    return totals


def reconcile(spec: TableSpec, manifest: Manifest, loaded: Mapping[str, int]) -> None:
    """BigQuery = manifest = source, for the row count and every money column."""
    figures = [("row_count", "rows")] + [(c.name, c.name) for c in spec.money_columns]
    for key, label in figures:
        source = manifest.source_totals.get(key, 0)
        bq = loaded.get(key, 0)
        if key == "row_count" and manifest.rows != source:
            raise ReconciliationError(
                f"{spec.name}: manifest lists {manifest.rows} rows but the source counted {source}",
                table=spec.name,
            )
        if bq != source:
            shown = (
                f"{bq} vs {source}"
                if key == "row_count"
                else f"{Decimal(bq).scaleb(-2)} vs {Decimal(source).scaleb(-2)}"
            )
            raise ReconciliationError(
                f"{spec.name}: {label} differ between BigQuery and the source: {shown}",
                table=spec.name,
                column=None if key == "row_count" else key,
            )


LOAD_JOB_ATTEMPTS = 5


def _run_load_job(
    client: bigquery.Client,
    spec: TableSpec,
    uris: list[str],
    staging: str,
    config: bigquery.LoadJobConfig,
    sync_date: str,
    job_id: str | None = None,
) -> bigquery.LoadJob:
    """Run one load job, under ``job_id`` (``bq_jobs``): a retry of the task attaches to the
    job an earlier try started. A job that BigQuery itself failed for a reason a retry can
    heal (backendError, rateLimitExceeded: too many updates of one table) is run again
    under its next try id, up to ``LOAD_JOB_ATTEMPTS`` times. That is safe because a failed
    load job commits nothing. An error whose job's outcome is unknown (a lost connection)
    is left to the task's retry, which attaches to that job if BigQuery has it."""
    base_id = job_id or bq_jobs.job_id("load", spec.name, staging, sync_date, uris)
    attempt = 1
    while True:
        try:
            job = bq_jobs.start_job(
                client,
                base_id,
                lambda i: client.load_table_from_uri(uris, staging, job_config=config, job_id=i),
                what=f"{spec.name}: load",
                usable=lambda j: _wrote_existing(client, staging, j),
            )
        except (gexc.GoogleAPIError, OSError) as exc:
            raise _job_error(spec.name, "load", exc) from None
        try:
            job.result()
            return job
        except (gexc.GoogleAPIError, OSError) as exc:
            failed_in_bigquery = job.done() and job.error_result is not None
            if not (failed_in_bigquery and is_transient(exc)) or attempt >= LOAD_JOB_ATTEMPTS:
                raise _job_error(spec.name, "load", exc) from None
            attempt += 1
            # Healed by the next try, as a rule: information, not a warning. Giving up raises.
            get_logger().info(
                "%s: load job %s hit a transient BigQuery error (%s); retrying (%d/%d)",
                spec.name,
                job.job_id,
                exc,
                attempt,
                LOAD_JOB_ATTEMPTS,
            )
            time.sleep(min(2**attempt, 30))


def _wrote_existing(client: bigquery.Client, table: str, job: Any) -> bool:
    """Whether what a finished load job wrote is still there: ``table`` exists and is not
    younger than the job (dropped and created again since, e.g. expired)."""
    try:
        created = client.get_table(table).created
    except gexc.NotFound:
        return False
    return created is None or job.ended is None or created <= job.ended


STAGING_EXPIRES = dt.timedelta(days=1)


def _create_staging(
    client: bigquery.Client, spec: TableSpec, manifest: Manifest, staging: str
) -> None:
    """Create the staging table, expiring after ``STAGING_EXPIRES``: a run killed before it
    drops the table leaves nothing behind for ever. One an earlier try of this export left
    (its loads may be attached to) is kept as it is."""
    table = bigquery.Table(staging, schema=schema_fields(manifest.bigquery_schema))
    table.clustering_fields = list(spec.cluster_by) or None  # as the loads write it
    table.expires = dt.datetime.now(dt.UTC) + STAGING_EXPIRES
    table = client.create_table(table, exists_ok=True)
    if table.expires is None:  # created by a load of an earlier version, without expiry
        table.expires = dt.datetime.now(dt.UTC) + STAGING_EXPIRES
        client.update_table(table, ["expires"])


def _load_staging(
    client: bigquery.Client, settings: Settings, spec: TableSpec, manifest: Manifest, staging: str
) -> list[str]:
    """Load the manifest's parts into the staging table; the load job ids."""
    # One load job takes at most settings.load_max_uris parts (BigQuery's limit is 10,000
    # URIs a job): the first replaces the staging table, the rest append to it. Staging is
    # published only once every job has loaded and the sums agree.
    uris, schema = manifest.part_uris, schema_fields(manifest.bigquery_schema)
    crcs = {part.uri: part.crc32c for part in manifest.parts}
    _create_staging(client, spec, manifest, staging)
    job_ids = []
    for start in range(0, len(uris), settings.load_max_uris):
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.AVRO,
            use_avro_logical_types=True,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND
            if start
            else bigquery.WriteDisposition.WRITE_TRUNCATE,
            schema=schema,
            # the current table's layout: real BigQuery copies only between tables whose
            # clustering agrees (the emulator does not check)
            clustering_fields=list(spec.cluster_by) or None,
            labels=current_job_labels(),
        )
        batch = uris[start : start + settings.load_max_uris]
        # The input: these parts (their CRC32C: a part written again is a new input) into
        # this staging table, first (replacing it) or not.
        job_id = bq_jobs.job_id(
            "load", spec.name, staging, start, [(uri, crcs[uri]) for uri in batch]
        )
        load_job = _run_load_job(client, spec, batch, staging, config, manifest.sync_date, job_id)
        job_ids.append(load_job.job_id)
    return job_ids


def _publish(
    client: bigquery.Client, spec: TableSpec, staging: str, final: str
) -> bigquery.CopyJob:
    """Replace the reporting table with the checked staging table, atomically."""
    with contextlib.suppress(gexc.NotFound):  # a first copy creates it with staging's layout
        table = client.get_table(final)
        if (table.clustering_fields or []) != list(spec.cluster_by):
            # Real BigQuery refuses a copy onto a table clustered otherwise than its source.
            table.clustering_fields = list(spec.cluster_by) or None
            client.update_table(table, ["clustering_fields"])
    config = bigquery.CopyJobConfig(
        write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE, labels=current_job_labels()
    )
    try:
        copy_job = bq_jobs.start_job(
            client,
            bq_jobs.job_id("publish", spec.name, staging, final),
            lambda i: client.copy_table(staging, final, job_config=config, job_id=i),
            what=f"{spec.name}: copy",
        )
        copy_job.result()
    except (gexc.GoogleAPIError, OSError) as exc:
        raise _job_error(spec.name, "copy", exc) from None
    return copy_job


def last_published_rows(settings: Settings, table: str) -> int | None:
    """The rows of the table's last published (Completed, current table replaced) run, as
    ``ph_sync_runs`` records it; None before the first."""
    sql = (
        f"SELECT rows_loaded FROM {settings.quoted_table_ref(AUDIT_TABLE.name)}\n"
        "WHERE table_name = @table AND status = 'Completed' AND rows_loaded IS NOT NULL\n"
        "AND IFNULL(current_replaced, TRUE)\n"
        "ORDER BY ended_at DESC LIMIT 1"
    )
    config = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter("table", "STRING", table)]
    )
    try:
        rows = list(run_query(settings, sql, config))
    except gexc.NotFound:  # no audit table yet: nothing was published
        return None
    return int(rows[0]["rows_loaded"]) if rows else None


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


def replace_table(
    settings: Settings,
    spec: TableSpec,
    manifest: Manifest,
    allow_row_drop: bool = False,
    replace_current: bool = False,
) -> LoadResult:
    """Load the manifest's parts, verify them in staging, then replace the day's history
    partition and, when the day is not older than the current table's (or
    ``replace_current``), the current table, unless its rows fell too far below the last
    published count (``check_row_drop``)."""
    client = bigquery_client(settings)
    started = dt.datetime.now(dt.UTC)
    staging_name = _staging_name(manifest)
    staging = settings.table_ref(staging_name)
    current_day = published_day(settings, spec.name)
    publish_current = replace_current or current_day is None or manifest.sync_date >= current_day
    previous = last_published_rows(settings, spec.name) if publish_current else None
    copy_job_id, dropped = "", False
    try:
        load_job_ids = _load_staging(client, settings, spec, manifest, staging)
        loaded = bigquery_totals(settings, staging_name, spec)
        reconcile(spec, manifest, loaded)
        if publish_current:
            dropped = check_row_drop(
                spec.name, previous, manifest.rows, settings.max_row_drop_percent, allow_row_drop
            )
        replace_history_partition(settings, spec, manifest, staging_name)
        if publish_current:
            copy_job_id = _publish(client, spec, staging, settings.table_ref(spec.name)).job_id
    except BaseException as exc:
        if not _keep_staging(client, staging, exc):
            _drop_staging(client, staging)
        raise
    _drop_staging(client, staging)
    if publish_current:
        _check_current(client, settings, spec, manifest)
    return LoadResult(
        spec.name,
        manifest.uri,
        manifest.export_id,
        manifest.rows,
        ",".join(load_job_ids),
        copy_job_id,
        started.isoformat(),
        dt.datetime.now(dt.UTC).isoformat(),
        loaded,
        previous,
        dropped,
        publish_current,
        current_day,
    )


def _keep_staging(client: bigquery.Client, staging: str, exc: BaseException) -> bool:
    """Whether a failed replacement keeps its staging table: after a transient failure, when
    a load wrote rows into it (perhaps one whose answer was lost), for the retry, whose loads
    attach to this try's jobs; it expires after a day if no retry comes. Else (a load that
    failed, a refused reconciliation) it is of no use."""
    if not (isinstance(exc, Exception) and is_transient(exc)):
        return False
    try:
        return bool(client.get_table(staging).num_rows)
    except (gexc.GoogleAPIError, OSError):
        return False


def _drop_staging(client: bigquery.Client, staging: str) -> None:
    # A stray staging table is harmless: the next export's staging name differs, and it
    # expires after a day.
    with contextlib.suppress(gexc.GoogleAPIError, OSError):
        client.delete_table(staging, not_found_ok=True)


def _check_current(
    client: bigquery.Client, settings: Settings, spec: TableSpec, manifest: Manifest
) -> None:
    """Document the published table and check that it holds the manifest's rows."""
    table = document_table(
        client,
        settings.table_ref(spec.name),
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


def published_day(settings: Settings, table: str) -> str | None:
    """The ``sync_date`` the current table holds (ISO), None when it is absent or empty: the
    table itself says which day it is, whatever the audit trail holds."""
    sql = f"SELECT MAX(sync_date) AS day FROM {settings.quoted_table_ref(table)}"
    try:
        rows = list(run_query(settings, sql))
    except gexc.NotFound:
        return None
    day = rows[0]["day"] if rows else None
    return day.isoformat() if day else None


# ---------------------------------------------------------------- history: a partition a day

DAY_MS = 86_400_000


def history_layout(settings: Settings, spec: TableSpec) -> bigquery.TimePartitioning:
    """DAY partitions on ``sync_date``, expiring after ``PARTYHELP_HISTORY_DAYS`` (0: never)."""
    return bigquery.TimePartitioning(
        type_=bigquery.TimePartitioningType.DAY,
        field="sync_date",
        expiration_ms=settings.history_days * DAY_MS if settings.history_days else None,
    )


def ensure_history_table(
    settings: Settings, spec: TableSpec, fields: list[dict[str, str]]
) -> bigquery.Table:
    """Create ``ph_<table>_history`` if absent; add the columns of ``fields`` it lacks and
    set its partition expiration when it differs."""
    client = bigquery_client(settings)
    reference = settings.table_ref(spec.history_name)
    wanted = bigquery.Table(reference, schema=schema_fields(fields))
    wanted.time_partitioning = history_layout(settings, spec)
    wanted.clustering_fields = list(spec.cluster_by) or None
    wanted.description = (
        f"History of {spec.name}: the table as each day's sync saw it, one "
        f"partition per sync_date. {spec.description}"
    )
    wanted.labels = _pii_labels(spec, [f["name"] for f in fields])
    table = client.create_table(wanted, exists_ok=True)  # the existing one, if any
    table = add_missing_columns(client, table, fields)
    # Earlier days keep their hashed columns when the hashes are switched off: the table's
    # own columns say whether it holds PII.
    labels = _pii_labels(spec, [f.name for f in table.schema])
    if labels_differ(table.labels, labels):
        table.labels = labels
        table = client.update_table(table, ["labels"])
    layout = wanted.time_partitioning
    if (table.time_partitioning and table.time_partitioning.expiration_ms) != layout.expiration_ms:
        table.time_partitioning = layout  # a PATCH; a null expiration removes it
        table = client.update_table(table, ["time_partitioning"])
    return table


def _pii_labels(spec: TableSpec, column_names: list[str]) -> dict[str, str]:
    hashed = {column.name for column in spec.columns if column.pii}
    return resource_labels(bool(hashed & set(column_names)))


def replace_history_partition(
    settings: Settings, spec: TableSpec, manifest: Manifest, staging_name: str
) -> None:
    """Replace the day's partition with the checked staging rows, in one transaction: the
    day's old rows go and the new ones come together, or nothing changes."""
    ensure_history_table(settings, spec, manifest.bigquery_schema)
    columns = ", ".join(f"`{f['name']}`" for f in manifest.bigquery_schema)
    history = settings.quoted_table_ref(spec.history_name)
    sql = "\n".join(
        [
            "BEGIN TRANSACTION;",
            f"DELETE FROM {history} WHERE sync_date = @sync_date;",
            f"INSERT INTO {history} ({columns})",
            f"SELECT {columns} FROM {settings.quoted_table_ref(staging_name)};",
            "COMMIT TRANSACTION;",
        ]
    )
    config = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter("sync_date", "DATE", manifest.sync_date)]
    )
    # The input: this export's checked rows into this day's partition.
    job_id = bq_jobs.job_id(
        "history", spec.name, manifest.export_id, staging_name, sql, manifest.sync_date
    )
    try:
        run_query(settings, sql, config, job_id, what=f"{spec.name}: history transaction")
    except (gexc.GoogleAPIError, OSError) as exc:
        raise _job_error(spec.name, f"history partition {manifest.sync_date}", exc) from None
    held = history_rows(settings, spec, manifest.sync_date)
    if held != manifest.rows:
        raise ReconciliationError(
            f"{spec.history_name}: partition {manifest.sync_date} holds {held} rows after "
            f"the load but the manifest lists {manifest.rows}",
            table=spec.name,
        )


def history_rows(settings: Settings, spec: TableSpec, day: str) -> int:
    """Rows of one day's partition of the table's history."""
    config = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter("sync_date", "DATE", day)]
    )
    sql = (
        f"SELECT COUNT(*) AS n FROM {settings.quoted_table_ref(spec.history_name)} "
        "WHERE sync_date = @sync_date"
    )
    return int(next(iter(run_query(settings, sql, config)))["n"])


def view_sql(settings: Settings, view: ViewSpec | PeriodViewSpec) -> str:
    """The view's query over its base table, with validated, quoted identifiers (and the
    reporting time zone, for a view by period)."""
    base = settings.quoted_table_ref(view.base.name)
    if isinstance(view, PeriodViewSpec):
        return period_view_query(view, base, settings.timezone)
    return view_query(view, base)


def replace_view(settings: Settings, name: str, select_sql: str) -> None:
    """CREATE OR REPLACE the view ``name`` as ``select_sql``, under a job id of its DDL
    (``bq_jobs``: a retry attaches to the job an earlier try started)."""
    ddl = f"CREATE OR REPLACE VIEW {settings.quoted_table_ref(name)} AS\n{select_sql}"
    run_query(settings, ddl, job_id=bq_jobs.job_id("view", name, ddl), what=f"{name}: view refresh")


def refresh_view(settings: Settings, view: ViewSpec | PeriodViewSpec) -> str:
    """CREATE OR REPLACE the view, then document and label it; returns its reference."""
    client = bigquery_client(settings)
    replace_view(settings, view.name, view_sql(settings, view))
    # Descriptions and labels go through the API, not DDL text: no value is ever formatted
    # into SQL (and CREATE OR REPLACE drops the labels a view had).
    document_table(
        client,
        settings.table_ref(view.name),
        view.description,
        {c.name: c.description for c in view.columns},
        resource_labels(any(c.pii for c in view.columns)),
    )
    return settings.table_ref(view.name)


def document_table(
    client: bigquery.Client,
    table_ref: str,
    description: str,
    columns: Mapping[str, str],
    labels: Mapping[str, str] | None = None,
) -> bigquery.Table:
    """Set the table's and its columns' descriptions where they differ from the spec's, and
    its ``labels`` where one differs (other labels are kept)."""
    table = client.get_table(table_ref)
    schema = [
        bigquery.SchemaField(
            f.name, f.field_type, mode=f.mode, description=columns.get(f.name, f.description)
        )
        for f in table.schema
    ]
    relabel = dict(labels) if labels and labels_differ(table.labels, labels) else None
    if table.description == description and schema == list(table.schema) and not relabel:
        return table
    table.description = description
    table.schema = schema
    fields = ["description", "schema"]
    if relabel:
        table.labels = relabel
        fields.append("labels")
    return client.update_table(table, fields)


def ensure_audit_table(settings: Settings) -> bigquery.Table:
    """Create the ``ph_sync_runs`` audit table if it is absent; set its labels when they
    differ."""
    client = bigquery_client(settings)
    table = bigquery.Table(
        settings.table_ref(AUDIT_TABLE.name), schema=schema_fields(AUDIT_TABLE.columns)
    )
    table.description = AUDIT_TABLE.description
    table.labels = labels = resource_labels(pii=False)
    table = client.create_table(table, exists_ok=True)  # the existing one, if any
    table = add_missing_columns(client, table, AUDIT_TABLE.columns)
    if not labels_differ(table.labels, labels):
        return table
    table.labels = labels
    return client.update_table(table, ["labels"])


def add_missing_columns(
    client: bigquery.Client, table: bigquery.Table, columns: Iterable[Column] | list[dict[str, str]]
) -> bigquery.Table:
    """Add the columns the table lacks, NULLABLE (its earlier rows have none): a column the
    spec gained since the table was created."""
    have = {field.name for field in table.schema}
    missing = [
        bigquery.SchemaField(f.name, f.field_type, mode="NULLABLE", description=f.description)
        for f in schema_fields(columns)
        if f.name not in have
    ]
    if not missing:
        return table
    table.schema = [*table.schema, *missing]
    return client.update_table(table, ["schema"])


def append_audit_rows(settings: Settings, rows: list[dict[str, Any]]) -> None:
    """Append rows to ``ph_sync_runs`` with a load job (atomic, free, no streaming buffer)."""
    if not rows:
        return
    client = bigquery_client(settings)
    ensure_dataset(settings)  # a run that failed before any load may be the first one
    ensure_audit_table(settings)
    config = bigquery.LoadJobConfig(
        schema=schema_fields(AUDIT_TABLE.columns),
        source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
        write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
        labels=current_job_labels(),
    )
    # The id holds the run's attempt (``bq_jobs.job_run``): a retried task appends nothing
    # twice, a new attempt of the run appends its own rows.
    job = bq_jobs.start_job(
        client,
        bq_jobs.job_id("audit", AUDIT_TABLE.name, rows),
        lambda i: client.load_table_from_json(
            rows,
            settings.table_ref(AUDIT_TABLE.name),
            job_config=config,
            job_id=i,
            timeout=bigquery_window(settings),
        ),
        what=f"{AUDIT_TABLE.name}: audit append",
    )
    job.result()


# ---------------------------------------------------------------- the trace: freshness, labels

PIPELINE_LABEL = "partyhelp-bigquery-sync"  # the flow's name
SOURCE_LABEL = "partyhelp-mysql"
_NOT_LABEL_TEXT = re.compile(r"[^a-z0-9_-]")
_JOB_LABELS: ContextVar[Mapping[str, str]] = ContextVar(
    "partyhelp_job_labels", default=MappingProxyType({})
)


def label_value(text: str) -> str:
    """``text`` as BigQuery accepts a label value: lowercase letters, digits, ``_`` and
    ``-`` (anything else becomes ``-``), at most 63 characters."""
    return _NOT_LABEL_TEXT.sub("-", text.lower())[:63]


def job_labels(table: str, sync_date: str | dt.date, flow_run_id: str | None) -> dict[str, str]:
    """The labels of every BigQuery job of a run, for cost and lineage: the pipeline, the
    table the job is for, the reporting day (``2026-11-25``) and the Prefect flow run
    (``local`` outside one)."""
    return {
        "pipeline": PIPELINE_LABEL,
        "table": label_value(table),
        "sync_date": label_value(str(sync_date)),
        "flow_run": label_value(str(flow_run_id or "local")),
    }


@contextlib.contextmanager
def labelled_jobs(labels: Mapping[str, str]) -> Iterator[None]:
    """Every job this context (thread, task) starts inside the block carries ``labels``:
    load, copy and query jobs, whichever helper starts them."""
    token = _JOB_LABELS.set(MappingProxyType(dict(labels)))
    try:
        yield
    finally:
        _JOB_LABELS.reset(token)


def current_job_labels() -> dict[str, str]:
    """The labels of ``labelled_jobs`` around the caller; none outside it."""
    return dict(_JOB_LABELS.get())


def resource_labels(pii: bool) -> dict[str, str]:
    """The labels of the dataset and of a table or view: where the data comes from, and
    whether it holds (hashed) personal data."""
    return {"source": SOURCE_LABEL, "pii": "hashed" if pii else "none"}


def loaded_table_labels(spec: TableSpec, manifest: Manifest) -> dict[str, str]:
    """``resource_labels`` of a table loaded from ``manifest``: ``pii`` is ``hashed`` when
    the export holds one of the spec's hashed PII columns."""
    hashed = {column.name for column in spec.columns if column.pii}
    return resource_labels(any(field["name"] in hashed for field in manifest.bigquery_schema))


def labels_differ(current: Mapping[str, str] | None, wanted: Mapping[str, str]) -> bool:
    """Whether a resource's labels lack one of ``wanted`` (other labels are left alone)."""
    return any((current or {}).get(key) != value for key, value in wanted.items())


def refresh_freshness_view(settings: Settings) -> str:
    """CREATE OR REPLACE ``ph_sync_freshness`` over the audit table, then document and
    label it; returns its reference."""
    audit = settings.quoted_table_ref(FRESHNESS_VIEW.base.name)
    replace_view(settings, FRESHNESS_VIEW.name, freshness_query(FRESHNESS_VIEW, audit))
    reference = settings.table_ref(FRESHNESS_VIEW.name)
    document_table(
        bigquery_client(settings),
        reference,
        FRESHNESS_VIEW.description,
        {c.name: c.description for c in FRESHNESS_VIEW.columns},
        resource_labels(pii=False),
    )
    return reference
