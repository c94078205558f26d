"""The BigQuery tasks: replace a table from its manifest, refresh the view, append the audit."""

from __future__ import annotations

from typing import Any

from prefect import task

from partyhelp_pipeline import manifest as mf
from partyhelp_pipeline import warehouse
from partyhelp_pipeline.clients import storage_client
from partyhelp_pipeline.spec import SALES_BILLING_SUMMARY, TABLES
from tasks.options import RETRY_OPTIONS, runtime_settings


@task(name="load", task_run_name="load-{manifest.table}", **RETRY_OPTIONS)
def load_table(manifest: mf.Manifest) -> warehouse.LoadResult:
    """Replace a BigQuery table with the manifest's parts, verified against the source."""
    settings = runtime_settings()
    mf.verify_parts(storage_client(settings), manifest)
    warehouse.ensure_dataset(settings)  # idempotent; here so that BigQuery is only needed now
    return warehouse.replace_table(settings, TABLES[manifest.table], manifest)


@task(name="refresh-view", task_run_name="refresh-view-ph_sales_billing_summary",
      **RETRY_OPTIONS)
def refresh_view() -> str:
    """CREATE OR REPLACE the billing summary view."""
    return warehouse.refresh_view(runtime_settings(), SALES_BILLING_SUMMARY)


@task(name="record-audit", **RETRY_OPTIONS)
def record_audit(rows: list[dict[str, Any]]) -> int:
    """Append this run's rows to ``ph_sync_runs``."""
    warehouse.append_audit_rows(runtime_settings(), rows)
    return len(rows)
