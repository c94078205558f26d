"""The dataset a task writes to, resolved once: the ``Warehouse`` value every warehouse
function takes (a client and the values it needs, never the whole settings), the dataset
itself, and the query and table helpers every job shares.

Every call to BigQuery carries its own ``retry``/``timeout`` (``clients.call_options``) or,
for a query, ``job_retry`` too (``clients.query_options``), all from ``Warehouse.window``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import bigquery

from partyhelp_pipeline import bq_jobs
from partyhelp_pipeline.clients import (
    bigquery_client,
    bigquery_window,
    call_options,
    query_options,
)
from partyhelp_pipeline.errors import LoadError, is_transient
from partyhelp_pipeline.settings import Settings, quote_table_ref, validate_table
from partyhelp_pipeline.spec import Column
from partyhelp_pipeline.warehouse.labels import current_job_labels, labels_differ, resource_labels

DATASET_DESCRIPTION = (
    "Partyhelp reporting tables, replaced daily by the partyhelp-bigquery-sync Prefect flow "
    "from the Partyhelp MySQL database. Raw Avro exports are kept in GCS for audit."
)


@dataclass(frozen=True)
class Warehouse:
    """The BigQuery dataset a task works on: its client, where it is, and the settings'
    values the warehouse reads (built once per task by ``open_warehouse``)."""

    client: bigquery.Client
    project: str
    dataset: str
    location: str  # where the dataset is created (PARTYHELP_BQ_LOCATION)
    window: float  # PARTYHELP_BQ_RETRY_SECONDS, else the library's 600 s (``bigquery_window``)
    timezone: str  # the reporting time zone, of the views by period
    history_days: int  # partition expiry of the history tables; 0: never
    max_row_drop_percent: int
    load_max_uris: int  # parts per load job
    pii_hashes: bool  # PARTYHELP_INCLUDE_PII_HASHES: the dataset's ``pii`` label

    @property
    def reference(self) -> str:
        """``project.dataset``."""
        return f"{self.project}.{self.dataset}"

    def table_ref(self, table: str) -> str:
        """``project.dataset.table`` (unquoted) for client calls."""
        return f"{self.reference}.{validate_table(table)}"

    def quoted_table_ref(self, table: str) -> str:
        """Back-quoted ``project.dataset.table`` for SQL text."""
        return quote_table_ref(self.project, self.dataset, table)

    def calls(self) -> dict[str, Any]:
        """``retry`` and ``timeout`` of one API call (``clients.call_options``)."""
        return call_options(self.window)


def open_warehouse(settings: Settings) -> Warehouse:
    """The ``Warehouse`` of these settings: one client, built here (``bigquery_client``)."""
    return Warehouse(
        client=bigquery_client(settings),
        project=settings.bq_project,
        dataset=settings.bq_dataset,
        location=settings.bq_location,
        window=bigquery_window(settings.bq_retry_seconds),
        timezone=settings.timezone,
        history_days=settings.history_days,
        max_row_drop_percent=settings.max_row_drop_percent,
        load_max_uris=settings.load_max_uris,
        pii_hashes=settings.include_pii_hashes,
    )


def schema_fields(columns: Iterable[Column] | list[dict[str, str]]) -> list[bigquery.SchemaField]:
    """BigQuery schema fields from spec columns or their REST representation."""
    return [
        bigquery.SchemaField.from_api_repr(c if isinstance(c, dict) else c.bigquery_field())
        for c in columns
    ]


def job_error(table: str, step: str, exc: Exception) -> LoadError:
    """A failed BigQuery ``step`` of ``table`` as a ``LoadError``: BigQuery's own messages,
    transient when a retry can heal the cause."""
    errors = getattr(exc, "errors", None) or []
    detail = "; ".join(str(e.get("message", e)) for e in errors if isinstance(e, dict))
    message = detail or str(exc)
    return LoadError(
        f"{table}: BigQuery {step} failed: {message}", transient=is_transient(exc), table=table
    )


def run_query(
    warehouse: Warehouse,
    sql: str,
    config: bigquery.QueryJobConfig | None = None,
    job_id: str | None = None,
    what: str = "query",
) -> Iterable[Any]:
    """Run one query to its end, every retry within the window; the job carries the labels
    of ``labelled_jobs`` (added to ``config``'s own). A query that writes passes its
    ``bq_jobs.job_id``: a retry attaches to the job an earlier try started
    (``bq_jobs.start_job``) instead of running it twice; ``what`` names it."""
    if labels := current_job_labels():
        config = config or bigquery.QueryJobConfig()
        config.labels = {**labels, **config.labels}
    client, options = warehouse.client, query_options(warehouse.window)
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
        window=warehouse.window,
    )
    return job.result(**options)


def ensure_dataset(warehouse: Warehouse) -> bigquery.Dataset:
    """Create the dataset in the configured location if it is absent; set its ``source``
    and ``pii`` labels (``resource_labels``) when they differ."""
    client, calls = warehouse.client, warehouse.calls()
    labels = resource_labels(warehouse.pii_hashes)
    with contextlib.suppress(gexc.NotFound):
        existing = client.get_dataset(warehouse.reference, **calls)  # concurrent loads: a read
        if not labels_differ(existing.labels, labels):
            return existing
        # A new object, without the read's etag: concurrent loads may all update (a PATCH of
        # the same labels), none fails on a precondition; other labels are kept.
        patch = bigquery.Dataset(warehouse.reference)
        patch.labels = labels
        return client.update_dataset(patch, ["labels"], **calls)
    dataset = bigquery.Dataset(warehouse.reference)
    dataset.location = warehouse.location
    dataset.description = DATASET_DESCRIPTION
    dataset.labels = labels
    return client.create_dataset(dataset, exists_ok=True, **calls)


def document_table(
    warehouse: Warehouse,
    table_ref: str,
    description: str,
    columns: Mapping[str, str],
    labels: Mapping[str, str] | None = None,
) -> bigquery.Table:
    """Set the table's and its columns' descriptions where they differ from the spec's, and
    its ``labels`` where one differs (other labels are kept)."""
    table = warehouse.client.get_table(table_ref, **warehouse.calls())
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
    return warehouse.client.update_table(table, fields, **warehouse.calls())


def add_missing_columns(
    warehouse: Warehouse,
    table: bigquery.Table,
    columns: Iterable[Column] | list[dict[str, str]],
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
    return warehouse.client.update_table(table, ["schema"], **warehouse.calls())
