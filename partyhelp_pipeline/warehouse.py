"""BigQuery side: dataset, atomic table replacement from a manifest, view, audit rows.

A table is replaced in three steps so that nothing unverified is ever visible:
load the manifest's parts into a staging table, check its row count and money sums
against the manifest (which holds the source's figures), then copy it over the
reporting table with WRITE_TRUNCATE, an atomic replacement. A failure at any step
leaves the previous table as it was.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import bigquery

from partyhelp_pipeline.clients import bigquery_client
from partyhelp_pipeline.errors import LoadError, ReconciliationError, is_transient
from partyhelp_pipeline.logs import get_logger
from partyhelp_pipeline.manifest import Manifest
from partyhelp_pipeline.settings import Settings, validate_table
from partyhelp_pipeline.spec import AUDIT_TABLE, Column, TableSpec, ViewSpec
from partyhelp_pipeline.spec.sql import bigquery_totals_query, view_query

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


def ensure_dataset(settings: Settings) -> bigquery.Dataset:
    """Create the dataset in the configured location if it is absent."""
    client = bigquery_client(settings)
    reference = f"{settings.bq_project}.{settings.bq_dataset}"
    with contextlib.suppress(gexc.NotFound):
        return client.get_dataset(reference)  # a read: concurrent loads need not write
    dataset = bigquery.Dataset(reference)
    dataset.location = settings.bq_location
    dataset.description = DATASET_DESCRIPTION
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


def _job_error(table: str, step: str, exc: Exception) -> LoadError:
    errors = getattr(exc, "errors", None) or []
    detail = "; ".join(str(e.get("message", e)) for e in errors if isinstance(e, dict))
    message = detail or str(exc)
    return LoadError(f"{table}: BigQuery {step} failed: {message}",
                     transient=is_transient(exc), table=table)


def _staging_name(manifest: Manifest) -> str:
    return validate_table(f"_staging_{manifest.table}_" +
                          re.sub(r"[^A-Za-z0-9_]", "_", manifest.export_id))


def bigquery_totals(settings: Settings, table: str, spec: TableSpec) -> dict[str, int]:
    """Row count and money sums (in cents) of a table in the dataset: one aggregate query."""
    client = bigquery_client(settings)
    sql = bigquery_totals_query(spec, settings.quoted_table_ref(table))
    row = next(iter(client.query(sql).result()))
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
                f"{spec.name}: manifest lists {manifest.rows} rows but the source counted "
                f"{source}", table=spec.name)
        if bq != source:
            shown = (f"{bq} vs {source}" if key == "row_count"
                     else f"{Decimal(bq).scaleb(-2)} vs {Decimal(source).scaleb(-2)}")
            raise ReconciliationError(
                f"{spec.name}: {label} differ between BigQuery and the source: {shown}",
                table=spec.name, column=None if key == "row_count" else key)


LOAD_JOB_ATTEMPTS = 5


def _run_load_job(client: bigquery.Client, spec: TableSpec, uris: list[str], staging: str,
                  config: bigquery.LoadJobConfig, sync_date: str) -> bigquery.LoadJob:
    """Run one load job; a job that BigQuery itself failed for a reason a retry can heal
    (backendError, rateLimitExceeded: too many updates of one table) is run again, up to
    ``LOAD_JOB_ATTEMPTS`` times. That is safe because a failed load job commits nothing. An
    error whose job's outcome is unknown (a lost connection) is left to the task's retry,
    which starts again from the first job."""
    attempt = 1
    while True:
        try:
            job = client.load_table_from_uri(
                uris, staging, job_config=config,
                job_id_prefix=f"partyhelp_{spec.name}_{sync_date.replace('-', '')}_")
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
            get_logger().warning("%s: load job %s failed (%s); running it again (%d/%d)",
                                 spec.name, job.job_id, exc, attempt, LOAD_JOB_ATTEMPTS)
            time.sleep(min(2 ** attempt, 30))


def replace_table(settings: Settings, spec: TableSpec, manifest: Manifest) -> LoadResult:
    """Load the manifest's parts, verify them in staging, then atomically replace the table."""
    client = bigquery_client(settings)
    started = dt.datetime.now(dt.UTC)
    staging_name = _staging_name(manifest)
    staging = settings.table_ref(staging_name)
    final = settings.table_ref(spec.name)
    load_job_ids: list[str] = []
    try:
        # One load job takes at most settings.load_max_uris parts (BigQuery's limit is
        # 10,000 URIs a job): the first replaces the staging table, the rest append to it.
        # Staging is published only once every job has loaded and the sums agree.
        uris, schema = manifest.part_uris, schema_fields(manifest.bigquery_schema)
        for start in range(0, len(uris), settings.load_max_uris):
            config = bigquery.LoadJobConfig(
                source_format=bigquery.SourceFormat.AVRO,
                use_avro_logical_types=True,
                write_disposition=bigquery.WriteDisposition.WRITE_APPEND if start
                else bigquery.WriteDisposition.WRITE_TRUNCATE,
                schema=schema,
            )
            load_job = _run_load_job(client, spec, uris[start:start + settings.load_max_uris],
                                     staging, config, manifest.sync_date)
            load_job_ids.append(load_job.job_id)
        loaded = bigquery_totals(settings, staging_name, spec)
        reconcile(spec, manifest, loaded)
        try:
            copy_job = client.copy_table(
                staging, final,
                job_config=bigquery.CopyJobConfig(
                    write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE),
                job_id_prefix=f"partyhelp_{spec.name}_publish_")
            copy_job.result()
        except (gexc.GoogleAPIError, OSError) as exc:
            raise _job_error(spec.name, "copy", exc) from None
    finally:
        # A stray staging table is harmless: the next export's staging name differs.
        with contextlib.suppress(gexc.GoogleAPIError, OSError):
            client.delete_table(staging, not_found_ok=True)
    table = document_table(client, final, spec.description,
                           {f["name"]: f["description"] for f in manifest.bigquery_schema})
    if table.num_rows != manifest.rows:
        raise ReconciliationError(
            f"{spec.name}: BigQuery holds {table.num_rows} rows after the load but the "
            f"manifest lists {manifest.rows}", table=spec.name)
    return LoadResult(spec.name, manifest.uri, manifest.export_id, int(table.num_rows or 0),
                      ",".join(load_job_ids), copy_job.job_id, started.isoformat(),
                      dt.datetime.now(dt.UTC).isoformat(), loaded)


def view_sql(settings: Settings, view: ViewSpec) -> str:
    """The view's query over its base table, with validated, quoted identifiers."""
    return view_query(view, settings.quoted_table_ref(view.base.name))


def refresh_view(settings: Settings, view: ViewSpec) -> str:
    """CREATE OR REPLACE the view, then document its columns; returns its reference."""
    client = bigquery_client(settings)
    target = settings.quoted_table_ref(view.name)
    client.query(f"CREATE OR REPLACE VIEW {target} AS\n{view_sql(settings, view)}").result()
    # Descriptions go through the API, not DDL text: no value is ever formatted into SQL.
    document_table(client, settings.table_ref(view.name), view.description,
                   {c.name: c.description for c in view.columns})
    return settings.table_ref(view.name)


def document_table(client: bigquery.Client, table_ref: str, description: str,
                   columns: Mapping[str, str]) -> bigquery.Table:
    """Set the table's and its columns' descriptions where they differ from the spec's."""
    table = client.get_table(table_ref)
    schema = [
        bigquery.SchemaField(f.name, f.field_type, mode=f.mode,
                             description=columns.get(f.name, f.description))
        for f in table.schema
    ]
    if table.description == description and schema == list(table.schema):
        return table
    table.description = description
    table.schema = schema
    return client.update_table(table, ["description", "schema"])


def ensure_audit_table(settings: Settings) -> bigquery.Table:
    """Create the ``ph_sync_runs`` audit table if it is absent."""
    client = bigquery_client(settings)
    table = bigquery.Table(settings.table_ref(AUDIT_TABLE.name),
                           schema=schema_fields(AUDIT_TABLE.columns))
    table.description = AUDIT_TABLE.description
    return client.create_table(table, exists_ok=True)


def append_audit_rows(settings: Settings, rows: list[dict[str, Any]]) -> None:
    """Append rows to ``ph_sync_runs`` with a load job (atomic, free, no streaming buffer)."""
    if not rows:
        return
    client = bigquery_client(settings)
    ensure_audit_table(settings)
    job = client.load_table_from_json(
        rows, settings.table_ref(AUDIT_TABLE.name),
        job_config=bigquery.LoadJobConfig(
            schema=schema_fields(AUDIT_TABLE.columns),
            source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND),
        job_id_prefix="partyhelp_audit_")
    job.result()
