"""The reporting views over the current tables, ``ph_sync_freshness`` over the audit table
and ``ph_sync_health`` over the metrics: CREATE OR REPLACE under a job id of their DDL, then
documented and labelled."""

from __future__ import annotations

from partyhelp_pipeline import bq_jobs
from partyhelp_pipeline.spec import PeriodViewSpec, ViewSpec
from partyhelp_pipeline.spec.sql import (
    freshness_query,
    health_view_query,
    period_view_query,
    view_query,
)
from partyhelp_pipeline.spec.tables import FRESHNESS_VIEW, HEALTH_VIEW, AuditViewSpec
from partyhelp_pipeline.warehouse.labels import resource_labels
from partyhelp_pipeline.warehouse.metrics import ensure_metrics_table
from partyhelp_pipeline.warehouse.target import Warehouse, document_table, run_query


def view_sql(warehouse: Warehouse, view: ViewSpec | PeriodViewSpec) -> str:
    """The view's query over its base table, with validated, quoted identifiers (and the
    reporting time zone, for a view by period)."""
    base = warehouse.quoted_table_ref(view.base.name)
    if isinstance(view, PeriodViewSpec):
        return period_view_query(view, base, warehouse.timezone)
    return view_query(view, base)


def replace_view(warehouse: Warehouse, name: str, select_sql: str) -> None:
    """CREATE OR REPLACE the view ``name`` as ``select_sql``, under a job id of its DDL
    (``bq_jobs``: a retry attaches to the job an earlier try started)."""
    ddl = f"CREATE OR REPLACE VIEW {warehouse.quoted_table_ref(name)} AS\n{select_sql}"
    job_id = bq_jobs.job_id("view", name, ddl)
    run_query(warehouse, ddl, job_id=job_id, what=f"{name}: view refresh")


def refresh_view(warehouse: Warehouse, view: ViewSpec | PeriodViewSpec) -> str:
    """CREATE OR REPLACE the view, then document and label it; returns its reference."""
    replace_view(warehouse, view.name, view_sql(warehouse, view))
    # Descriptions and labels go through the API, not DDL text: no value is ever formatted
    # into SQL (and CREATE OR REPLACE drops the labels a view had).
    reference = warehouse.table_ref(view.name)
    document_table(
        warehouse,
        reference,
        view.description,
        {c.name: c.description for c in view.columns},
        resource_labels(any(c.pii for c in view.columns)),
    )
    return reference


def refresh_freshness_view(warehouse: Warehouse) -> str:
    """CREATE OR REPLACE ``ph_sync_freshness`` over the audit table, then document and
    label it; returns its reference."""
    audit = warehouse.quoted_table_ref(FRESHNESS_VIEW.base.name)
    return _refresh_record_view(warehouse, FRESHNESS_VIEW, freshness_query(FRESHNESS_VIEW, audit))


def refresh_health_view(warehouse: Warehouse) -> str:
    """CREATE OR REPLACE ``ph_sync_health`` over ``ph_sync_metrics`` (created first if
    absent: a view needs its table), then document and label it; returns its reference."""
    ensure_metrics_table(warehouse)
    metrics = warehouse.quoted_table_ref(HEALTH_VIEW.base.name)
    return _refresh_record_view(warehouse, HEALTH_VIEW, health_view_query(HEALTH_VIEW, metrics))


def _refresh_record_view(warehouse: Warehouse, view: AuditViewSpec, select_sql: str) -> str:
    """A view over what the runs recorded: replaced, documented, labelled (no PII)."""
    replace_view(warehouse, view.name, select_sql)
    reference = warehouse.table_ref(view.name)
    document_table(
        warehouse,
        reference,
        view.description,
        {c.name: c.description for c in view.columns},
        resource_labels(pii=False),
    )
    return reference
