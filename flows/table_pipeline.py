"""One table's pipeline, in one place: plan -> export chunks -> manifest -> load.

The sync flow runs one pipeline per table, concurrently. A replay starts from the kept
manifest instead of MySQL. An export that was damaged in GCS after its manifest was
committed (a retried run reuses it) is exported again from MySQL into a new folder, the
damaged one kept as evidence, and that is loaded instead.
"""

from __future__ import annotations

import contextvars
import datetime as dt
from concurrent.futures import ThreadPoolExecutor

from partyhelp_pipeline.clock import iso, utc_now
from partyhelp_pipeline.errors import DamagedExportError
from partyhelp_pipeline.health import TableHealth
from partyhelp_pipeline.logs import get_logger
from partyhelp_pipeline.manifest import Manifest
from partyhelp_pipeline.report import TableOutcome, first_line, named
from tasks import gcs_to_bigquery as load
from tasks import health
from tasks import mysql_to_gcs as extract


def export_table(
    table: str, day: dt.date, run_id: str | None, replaces: str | None = None
) -> Manifest:
    """Plan, export every chunk concurrently, then commit the manifest."""
    plan = extract.plan_export(table, day, run_id, replaces)
    chunks = [extract.export_chunk.submit(plan, index) for index in range(len(plan.chunks))]
    # The first failed chunk (in order) raises here: its error is the table's.
    return extract.commit_manifest(plan, [chunk.result() for chunk in chunks])


def _export_again(
    outcome: TableOutcome, damage: DamagedExportError, day: dt.date, run_id: str | None
) -> Manifest:
    damaged = outcome.manifest
    assert damaged is not None
    problem = named(outcome.table, first_line(damage))
    get_logger().warning(
        "%s; exporting %s again from MySQL (the damaged export %s is kept)",
        problem,
        outcome.table,
        damaged.export_id,
    )
    try:
        # A new plan (its inputs name the damaged export) gives new task runs, not cached ones.
        return export_table(outcome.table, day, run_id, replaces=damaged.export_id)
    except Exception as exc:
        raise RuntimeError(
            f"{problem}; exporting it again failed: {named(outcome.table, first_line(exc))}"
        ) from exc


def table_pipeline(
    table: str,
    day: dt.date,
    run_id: str | None,
    kept: Manifest | None = None,
    allow_row_drop: bool = False,
    replace_current: bool = False,
    allow_stale: bool = False,
) -> TableOutcome:
    """Sync one table (or replay its ``kept`` export); never raises: the outcome says."""
    outcome = TableOutcome(table, "replay" if kept else "sync", day, iso(utc_now()))
    # A replay reloads a day as it was exported: its freshness is not judged again.
    judged = {"allow_stale": allow_stale, "judge_freshness": kept is None}
    try:
        outcome.manifest = kept or export_table(table, day, run_id)
        try:
            outcome.load = load.load_table(
                outcome.manifest, allow_row_drop, replace_current, **judged
            )
        except DamagedExportError as damage:
            if kept is not None:
                raise
            outcome.manifest = _export_again(outcome, damage, day, run_id)
            outcome.load = load.load_table(
                outcome.manifest, allow_row_drop, replace_current, **judged
            )
    except Exception as exc:
        outcome.fail(exc)
    if outcome.load is not None and outcome.manifest is not None:
        outcome.health = _record_health(outcome.manifest, outcome.mode)
    outcome.end()
    return outcome


def _record_health(manifest: Manifest, mode: str) -> TableHealth | None:
    """The table's metrics and anomalies; a failure to measure them is a warning (the table
    is published, and the next run measures its own day)."""
    try:
        return health.record_health(manifest, mode)
    except Exception as exc:
        get_logger().warning("%s: could not record its metrics: %s", manifest.table, exc)
        return None


def run_table_pipelines(
    tables: list[str],
    day: dt.date,
    run_id: str | None,
    kept: dict[str, Manifest],
    allow_row_drop: bool = False,
    replace_current: bool = False,
    allow_stale: bool = False,
) -> list[TableOutcome]:
    """Every table's pipeline at once, each in a thread that carries the flow run's context
    (so their tasks belong to the run); outcomes in the order of ``tables``."""
    pool = ThreadPoolExecutor(max_workers=len(tables), thread_name_prefix="table")
    try:
        futures = [
            pool.submit(
                contextvars.copy_context().run,
                table_pipeline,
                table,
                day,
                run_id,
                kept.get(table),
                allow_row_drop,
                replace_current,
                allow_stale,
            )
            for table in tables
        ]
        return [future.result() for future in futures]
    finally:
        # A flow that times out must not wait here for a stalled call to return.
        pool.shutdown(wait=False, cancel_futures=True)
