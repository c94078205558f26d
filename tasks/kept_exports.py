"""What earlier runs kept in GCS: a day's export to replay, the days a backfill can replay."""

from __future__ import annotations

import datetime as dt

from prefect import task

from partyhelp_pipeline import manifest as mf
from partyhelp_pipeline.export_target import ExportTarget
from tasks.options import RETRY_OPTIONS, runtime_settings


@task(name="list-kept-exports", **RETRY_OPTIONS)
def days_with_kept_exports(start: dt.date, end: dt.date, tables: list[str]) -> list[dt.date]:
    """The days from ``start`` to ``end`` that hold a kept export of every table."""
    target = ExportTarget.from_settings(runtime_settings())
    days = (start + dt.timedelta(days=n) for n in range((end - start).days + 1))
    return [
        day
        for day in days
        if all(
            mf.has_kept_export(target.storage, target.bucket, target.prefix, day, table)
            for table in tables
        )
    ]


@task(name="find-export", task_run_name="find-export-{table}", **RETRY_OPTIONS)
def find_export(table: str, sync_date: dt.date) -> mf.Manifest:
    """The newest kept export of a table for a day, with every part verified."""
    target = ExportTarget.from_settings(runtime_settings())
    manifest = mf.find_latest_manifest(
        target.storage, target.bucket, target.prefix, sync_date, table
    )
    mf.verify_parts(target.storage, manifest)
    return manifest
