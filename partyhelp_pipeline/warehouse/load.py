"""Load a manifest's parts into a staging table and reconcile it against the source.

Nothing unverified is ever visible: the parts go into a staging table of their own (which
expires after a day, so a killed run leaves nothing behind for ever), whose row count and
money sums must equal the manifest's, which holds the source's figures. Each load job has a
deterministic id (``bq_jobs``): a retried task attaches to the jobs an earlier try started.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import bigquery

from partyhelp_pipeline import bq_jobs
from partyhelp_pipeline.errors import ReconciliationError, is_transient
from partyhelp_pipeline.logs import get_logger
from partyhelp_pipeline.manifest import Manifest
from partyhelp_pipeline.settings import validate_table
from partyhelp_pipeline.spec import TableSpec
from partyhelp_pipeline.spec.sql import bigquery_totals_query
from partyhelp_pipeline.warehouse.labels import current_job_labels
from partyhelp_pipeline.warehouse.target import Warehouse, job_error, run_query, schema_fields

STAGING_EXPIRES = dt.timedelta(days=1)


def staging_name(manifest: Manifest) -> str:
    """The staging table of one export: its table and export id."""
    return validate_table(
        f"_staging_{manifest.table}_" + re.sub(r"[^A-Za-z0-9_]", "_", manifest.export_id)
    )


class FailedInBigQuery(Exception):
    """A load job BigQuery itself failed for a reason a retry can heal (backendError,
    rateLimitExceeded: too many updates of one table): safe to run again, as a failed load
    job commits nothing."""

    def __init__(self, table: str, job_id: str, cause: Exception) -> None:
        super().__init__(f"{table}: load job {job_id} failed in BigQuery ({cause})")
        self.cause = cause


# Runs a load job again after ``FailedInBigQuery``, under its next try id, within the
# window (counted from the first try: a long load that fails late is left to the task's
# retry, as ``job_error`` calls it transient). An error whose job's outcome is unknown (a
# lost connection) is not retried here: the task's retry attaches to that job if BigQuery
# has it.
LOAD_JOB_RETRY = Retry(
    predicate=lambda exc: isinstance(exc, FailedInBigQuery),
    initial=2.0,
    maximum=30.0,
)


def run_load_job(
    warehouse: Warehouse,
    spec: TableSpec,
    uris: list[str],
    staging: str,
    config: bigquery.LoadJobConfig,
    job_id: str,
) -> bigquery.LoadJob:
    """Create one load job under ``job_id`` (``bq_jobs``: a retry of the task attaches to
    the job an earlier try started) and wait for it; a job BigQuery failed for a transient
    reason is created and waited for again (``LOAD_JOB_RETRY``)."""
    client, window = warehouse.client, warehouse.window
    failed: list[FailedInBigQuery] = []

    def create_and_wait() -> bigquery.LoadJob:
        if failed:  # healed by the next try, as a rule: information, not a warning
            get_logger().info("%s; retrying under its next try id", failed[-1])
        job = bq_jobs.start_job(
            client,
            job_id,
            lambda i: client.load_table_from_uri(
                uris, staging, job_config=config, job_id=i, **warehouse.calls()
            ),
            what=f"{spec.name}: load",
            window=window,
            usable=lambda j: _wrote_existing(warehouse, staging, j),
        )
        try:
            return bq_jobs.wait_for(job, window)
        except (gexc.GoogleAPIError, OSError) as exc:
            if job.done(reload=False) and job.error_result is not None and is_transient(exc):
                failed.append(FailedInBigQuery(spec.name, job.job_id, exc))
                raise failed[-1] from exc
            raise

    try:
        job: bigquery.LoadJob = LOAD_JOB_RETRY.with_timeout(window)(create_and_wait)()
        return job
    except gexc.RetryError as exc:  # the window ended on a job BigQuery failed
        cause = exc.cause.cause if isinstance(exc.cause, FailedInBigQuery) else exc
        raise job_error(spec.name, "load", cause) from None
    except (gexc.GoogleAPIError, OSError) as exc:
        raise job_error(spec.name, "load", exc) from None


def _wrote_existing(warehouse: Warehouse, table: str, job: Any) -> bool:
    """Whether what a finished load job wrote is still there: ``table`` exists and is not
    younger than the job (dropped and created again since, e.g. expired)."""
    try:
        created = warehouse.client.get_table(table, **warehouse.calls()).created
    except gexc.NotFound:
        return False
    return created is None or job.ended is None or created <= job.ended


def create_staging(warehouse: Warehouse, spec: TableSpec, manifest: Manifest) -> str:
    """Create the staging table, expiring after ``STAGING_EXPIRES``: a run killed before it
    drops the table leaves nothing behind for ever. One an earlier try of this export left
    (its loads may be attached to) is kept as it is. Returns its reference."""
    staging = warehouse.table_ref(staging_name(manifest))
    table = bigquery.Table(staging, schema=schema_fields(manifest.bigquery_schema))
    table.clustering_fields = list(spec.cluster_by) or None  # as the loads write it
    table.expires = dt.datetime.now(dt.UTC) + STAGING_EXPIRES
    table = warehouse.client.create_table(table, exists_ok=True, **warehouse.calls())
    if table.expires is None:  # created by a load of an earlier version, without expiry
        table.expires = dt.datetime.now(dt.UTC) + STAGING_EXPIRES
        warehouse.client.update_table(table, ["expires"], **warehouse.calls())
    return staging


def load_staging(warehouse: Warehouse, spec: TableSpec, manifest: Manifest) -> list[str]:
    """Load the manifest's parts into its staging table; the load job ids."""
    # One load job takes at most load_max_uris parts (BigQuery's limit is 10,000 URIs a
    # job): the first replaces the staging table, the rest append to it. Staging is
    # published only once every job has loaded and the sums agree.
    uris, schema = manifest.part_uris, schema_fields(manifest.bigquery_schema)
    crcs = {part.uri: part.crc32c for part in manifest.parts}
    staging = create_staging(warehouse, spec, manifest)
    job_ids = []
    for start in range(0, len(uris), warehouse.load_max_uris):
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
        batch = uris[start : start + warehouse.load_max_uris]
        # The input: these parts (their CRC32C: a part written again is a new input) into
        # this staging table, first (replacing it) or not.
        job_id = bq_jobs.job_id(
            "load", spec.name, staging, start, [(uri, crcs[uri]) for uri in batch]
        )
        job_ids.append(run_load_job(warehouse, spec, batch, staging, config, job_id).job_id)
    return job_ids


def bigquery_totals(warehouse: Warehouse, table: str, spec: TableSpec) -> dict[str, int]:
    """Row count and money sums (in cents) of a table in the dataset: one aggregate query."""
    sql = bigquery_totals_query(spec, warehouse.quoted_table_ref(table))
    row = next(iter(run_query(warehouse, sql)))
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
