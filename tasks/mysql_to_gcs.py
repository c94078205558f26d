"""The export tasks: MySQL -> Avro parts in GCS -> manifest (finding a kept export is in
``kept_exports``).

Each task takes names, days and plans (nothing secret, fine as parameters and cache keys),
resolves the run's settings once at its top (``runtime_settings()``, cached per run) into an
``ExportTarget`` and hands that down; the target, which holds clients and the PII salt,
never crosses a task boundary."""

from __future__ import annotations

import datetime as dt

from prefect import task
from prefect.runtime import task_run as current_task_run

from partyhelp_pipeline import drift, export
from partyhelp_pipeline import manifest as mf
from partyhelp_pipeline.clock import reporting_today, sync_date_for
from partyhelp_pipeline.export_target import ExportTarget
from partyhelp_pipeline.spec import TABLES
from tasks.options import RETRY_OPTIONS, runtime_settings


def _export_run_name() -> str:
    parameters = current_task_run.parameters
    plan: export.ExportPlan = parameters["plan"]
    if len(plan.chunks) == 1:
        return f"export-{plan.table}"
    return f"export-{plan.table}-chunk-{parameters['index']:04d}"


@task(name="resolve-sync-date", **RETRY_OPTIONS)
def resolve_sync_date(requested: dt.date | None, replay: bool) -> dt.date:
    """The run's day: today in the reporting time zone for a sync from MySQL (another day is
    refused), the kept day for a replay; persisted, so a retry after midnight keeps it."""
    settings = runtime_settings()
    today = reporting_today(settings.timezone, settings.clock_date)
    return sync_date_for(requested, replay, today)


@task(name="check-source-schema", **RETRY_OPTIONS)
def check_source_schema(tables: list[str]) -> None:
    """Fail before anything is written if the source lacks a column the specs read."""
    drift.check_source_schema(runtime_settings().mysql, [TABLES[t] for t in tables])


@task(name="plan", task_run_name="plan-{table}", **RETRY_OPTIONS)
def plan_export(
    table: str, sync_date: dt.date, flow_run_id: str | None, replaces: str | None = None
) -> export.ExportPlan:
    """Fix one table's export id, primary-key chunks and PII choice."""
    target = ExportTarget.from_settings(runtime_settings())
    return export.plan_export(target, TABLES[table], sync_date, flow_run_id, replaces)


@task(name="export", task_run_name=_export_run_name, **RETRY_OPTIONS)
def export_chunk(plan: export.ExportPlan, index: int) -> export.ChunkResult:
    """Stream one chunk of a table from MySQL into Avro parts in GCS."""
    target = ExportTarget.from_settings(runtime_settings())
    return export.export_chunk(target, TABLES[plan.table], plan, index)


@task(name="manifest", task_run_name="manifest-{plan.table}", **RETRY_OPTIONS)
def commit_manifest(plan: export.ExportPlan, chunks: list[export.ChunkResult]) -> mf.Manifest:
    """Commit the manifest that makes a complete export loadable."""
    target = ExportTarget.from_settings(runtime_settings())
    return export.commit_manifest(target, TABLES[plan.table], plan, chunks)
