"""The data-health tasks: each published table's metrics of the day, judged against its own
history, and the health page of the run.

A table's metrics (``ph_sync_metrics``, one row per table per published day) are measured
after its load, from its history partitions; an anomaly is a WARNING, a Prefect event
``partyhelp.sync.anomaly`` (which the automation of ``scripts.setup --notify-block`` turns
into a notification) and a line of the summary. It never fails the run: it is a question
for a person (the row-drop and freshness guards are the hard stops).
"""

from __future__ import annotations

import datetime as dt

from google.cloud import storage
from prefect import task
from prefect.events import emit_event
from prefect.runtime import flow_run

from partyhelp_pipeline import anomalies, health_report
from partyhelp_pipeline import manifest as mf
from partyhelp_pipeline.clients import gcs_upload_retry, storage_client
from partyhelp_pipeline.health import HealthPage, TableHealth
from partyhelp_pipeline.logs import get_logger
from partyhelp_pipeline.spec import TABLES
from partyhelp_pipeline.spec.tables import HEALTH_VIEW
from partyhelp_pipeline.warehouse import metrics, views
from partyhelp_pipeline.warehouse.target import open_warehouse
from tasks.gcs_to_bigquery import bigquery_jobs
from tasks.options import RETRY_OPTIONS, runtime_settings

PAGE_NAME = "index.html"


@task(name="record-health", task_run_name="record-health-{manifest.table}", **RETRY_OPTIONS)
def record_health(manifest: mf.Manifest, mode: str) -> TableHealth:
    """Measure the table's published day, judge it against its history, store the metrics
    row, and raise each anomaly as a warning and a Prefect event."""
    settings = runtime_settings()
    with bigquery_jobs(manifest.table, manifest.sync_date):
        health = metrics.record_day(
            open_warehouse(settings),
            TABLES[manifest.table],
            manifest,
            mode,
            window_days=settings.anomaly_window_days,
            min_days=settings.anomaly_min_days,
        )
    run_id = flow_run.get_id()
    for check in health.anomalies:
        get_logger().warning("anomaly: %s", check.message)
        emit_event(**anomalies.event_payload(check, manifest.sync_date, run_id))
    return health


@task(name="publish-health", task_run_name="publish-health", **RETRY_OPTIONS)
def publish_health(day: dt.date, tables: list[str]) -> HealthPage:
    """Refresh ``ph_sync_health`` and write the health page (rows added per day per table
    over 90 days, anomalies marked) next to the exports; its URI and chart."""
    settings = runtime_settings()
    warehouse = open_warehouse(settings)
    with bigquery_jobs(HEALTH_VIEW.name, day):
        views.refresh_health_view(warehouse)
        history = metrics.metrics_histories(
            warehouse, tables, day + dt.timedelta(days=1), health_report.CHART_DAYS
        )
    page = health_report.health_page(history, day)
    name = f"{health_folder(settings.gcs_prefix, day)}/{PAGE_NAME}"
    blob = storage.Blob(name, storage_client(settings).bucket(settings.gcs_bucket))
    blob.cache_control = "no-cache"
    blob.upload_from_string(
        page, content_type="text/html; charset=utf-8", retry=gcs_upload_retry(settings)
    )
    chart = health_report.chart_svg(history, day)
    return HealthPage(mf.gs_uri(settings.gcs_bucket, name), chart)


def health_folder(prefix: str, day: dt.date) -> str:
    """``PREFIX/health/sync_date=YYYY-MM-DD``: beside the exports' date folders, never in
    one (a day's folders hold only its tables' exports)."""
    folder = f"health/sync_date={day.isoformat()}"
    return f"{prefix}/{folder}" if prefix else folder
