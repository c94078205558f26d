"""``replace_table``: one table's day, from its manifest, composed of the other rooms.

A table is replaced so that nothing unverified is ever visible: the manifest's parts load
into a staging table (``load``), whose row count and money sums must equal the manifest's;
the day's history partition is replaced from it (``history``); then, when the day is not
older than the current table's, it is copied over the current table (``publish``), unless
its rows fell too far below the last published count (``audit``). A failure at any step
leaves the previous tables as they were.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from partyhelp_pipeline.freshness import SourceFreshness
from partyhelp_pipeline.manifest import Manifest
from partyhelp_pipeline.spec import TableSpec
from partyhelp_pipeline.warehouse import audit, history, load, metrics, publish
from partyhelp_pipeline.warehouse.target import Warehouse


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
    current_day: dt.date | None = None  # the current table's sync_date before this load
    freshness_warning: str | None = None  # the source was past warn_after (or published stale)


def replace_table(
    warehouse: Warehouse,
    spec: TableSpec,
    manifest: Manifest,
    allow_row_drop: bool = False,
    replace_current: bool = False,
    allow_stale: bool = False,
    judge_freshness: bool = True,
) -> LoadResult:
    """Load the manifest's parts, verify them in staging, then replace the day's history
    partition and, when the day is not older than the current table's (or
    ``replace_current``), the current table, unless its rows fell too far below the last
    published count (``publish.check_row_drop``) or its source is stale
    (``publish.check_freshness``; not for a replay, ``judge_freshness`` False)."""
    started = dt.datetime.now(dt.UTC)
    freshness_warning = None
    if judge_freshness:
        freshness_warning = _check_freshness(warehouse, spec, manifest, allow_stale)
    staging_name = load.staging_name(manifest)
    staging = warehouse.table_ref(staging_name)
    current_day = publish.published_day(warehouse, spec.name)
    publish_current = replace_current or current_day is None or manifest.sync_date >= current_day
    previous = audit.last_published_rows(warehouse, spec.name) if publish_current else None
    copy_job_id, dropped = "", False
    try:
        load_job_ids = load.load_staging(warehouse, spec, manifest)
        loaded = load.bigquery_totals(warehouse, staging_name, spec)
        load.reconcile(spec, manifest, loaded)
        if publish_current:
            dropped = publish.check_row_drop(
                spec.name, previous, manifest.rows, warehouse.max_row_drop_percent, allow_row_drop
            )
        history.replace_history_partition(warehouse, spec, manifest, staging_name)
        if publish_current:
            copy_job_id = publish.copy_over_current(warehouse, spec, staging).job_id
    except BaseException as exc:
        if not publish.keep_staging(warehouse, staging, exc):
            publish.drop_staging(warehouse, staging)
        raise
    publish.drop_staging(warehouse, staging)
    if publish_current:
        publish.check_current(warehouse, spec, manifest)
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
        freshness_warning,
    )


def _check_freshness(
    warehouse: Warehouse, spec: TableSpec, manifest: Manifest, allow_stale: bool
) -> str | None:
    measured = SourceFreshness.from_dict(manifest.freshness)
    limit = measured.error_after_hours if measured else None

    def enforced() -> bool:
        # A limit set by PARTYHELP_MAX_SOURCE_AGE_HOURS applies at once; the spec's own once
        # the table has been fresh on a published day (a first install on an old copy loads).
        assert measured is not None and limit is not None
        return measured.error_after_set or metrics.was_fresh(warehouse, spec.name, limit)

    return publish.check_freshness(spec.name, measured, allow_stale, enforced)
