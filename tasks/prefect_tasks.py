"""Prefect tasks: thin, typed wrappers over the plain functions of ``tasks/``.

Every task retries with an exponential backoff, but only for failures a retry can heal
(``tasks.errors.is_transient``). Results are persisted, with Prefect's default cache
policy (inputs + task source + flow run id), so a retried flow run skips what already
finished, and a new run never reuses an earlier run's results.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any
from zoneinfo import ZoneInfo

from prefect import task
from prefect.client.schemas.objects import TaskRun
from prefect.runtime import task_run as current_task_run
from prefect.states import State
from prefect.tasks import Task, exponential_backoff

from tasks import export, warehouse
from tasks import manifest as mf
from tasks.errors import is_transient
from tasks.settings import Settings, env_int, env_seconds, load_settings
from tasks.specs import SALES_BILLING_SUMMARY, TABLES, TableSpec


def retry_if_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry lost connections, 5xx and rate limits; fail at once on anything else."""
    try:
        state.result()
    except Exception as exc:
        return is_transient(exc)
    return True


# Read at import: Prefect fixes a task's retry options when it is decorated.
RETRIES = env_int("PARTYHELP_TASK_RETRIES", 3, minimum=0)
RETRY_OPTIONS: dict[str, Any] = {
    "retries": RETRIES,
    "retry_delay_seconds": exponential_backoff(
        backoff_factor=env_seconds("PARTYHELP_RETRY_DELAY_SECONDS", 10.0, allow_zero=True)),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_if_transient,
    "persist_result": True,
}


def runtime_settings() -> Settings:
    """Settings from the environment, with secrets from Prefect ``Secret`` blocks if named."""
    password = _secret_block("PARTYHELP_MYSQL_PASSWORD_BLOCK")
    salt = _secret_block("PARTYHELP_PII_SALT_BLOCK")
    env = dict(os.environ)
    if salt is not None:
        env["PARTYHELP_PII_SALT"] = salt
    return load_settings(env, mysql_password=password)


def _secret_block(variable: str) -> str | None:
    name = os.environ.get(variable)
    if not name:
        return None
    from prefect.blocks.system import Secret

    return str(Secret.load(name).get())


def _spec(table: str) -> TableSpec:
    return TABLES[table]


def _export_run_name() -> str:
    parameters = current_task_run.parameters
    plan: export.ExportPlan = parameters["plan"]
    if len(plan.chunks) == 1:
        return f"export-{plan.table}"
    return f"export-{plan.table}-chunk-{parameters['index']:04d}"


@task(name="resolve-sync-date", **RETRY_OPTIONS)
def resolve_sync_date(requested: dt.date | None, timezone: str) -> dt.date:
    """The run's reporting day: as requested, else today in the reporting time zone."""
    return requested or dt.datetime.now(ZoneInfo(timezone)).date()


@task(name="check-source-schema", **RETRY_OPTIONS)
def check_source_schema(tables: list[str]) -> None:
    """Fail before anything is written if the source lacks a column the specs read."""
    export.check_source_schema(runtime_settings(), [_spec(t) for t in tables])


@task(name="plan", task_run_name="plan-{table}", **RETRY_OPTIONS)
def plan_export(table: str, sync_date: dt.date, flow_run_id: str | None,
                replaces: str | None = None) -> export.ExportPlan:
    """Fix one table's export id and primary-key chunks."""
    return export.plan_export(runtime_settings(), _spec(table), sync_date, flow_run_id,
                              replaces)


@task(name="export", task_run_name=_export_run_name, **RETRY_OPTIONS)
def export_chunk(plan: export.ExportPlan, index: int) -> export.ChunkResult:
    """Stream one chunk of a table from MySQL into Avro parts in GCS."""
    return export.export_chunk(runtime_settings(), _spec(plan.table), plan, index)


@task(name="manifest", task_run_name="manifest-{plan.table}", **RETRY_OPTIONS)
def commit_manifest(plan: export.ExportPlan, chunks: list[export.ChunkResult]) -> mf.Manifest:
    """Commit the manifest that makes a complete export loadable."""
    return export.commit_manifest(runtime_settings(), _spec(plan.table), plan, chunks)


@task(name="find-export", task_run_name="find-export-{table}", **RETRY_OPTIONS)
def find_export(table: str, sync_date: dt.date) -> mf.Manifest:
    """The newest kept export of a table for a day, with every part verified."""
    settings = runtime_settings()
    client = export.storage_client(settings)
    manifest = mf.find_latest_manifest(client, settings.gcs_bucket, settings.gcs_prefix,
                                       sync_date, table)
    mf.verify_parts(client, manifest)
    return manifest


@task(name="load", task_run_name="load-{manifest.table}", **RETRY_OPTIONS)
def load_table(manifest: mf.Manifest) -> warehouse.LoadResult:
    """Replace a BigQuery table with the manifest's parts, verified against the source."""
    settings = runtime_settings()
    mf.verify_parts(export.storage_client(settings), manifest)
    warehouse.ensure_dataset(settings)  # idempotent; here so that BigQuery is only needed now
    return warehouse.replace_table(settings, _spec(manifest.table), manifest)


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
