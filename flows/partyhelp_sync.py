"""The daily Partyhelp -> BigQuery sync, as a Prefect flow and a command.

    python -m flows.partyhelp_sync [--date YYYY-MM-DD] [--tables ph_venues,ph_leads]
    python -m flows.partyhelp_sync --from-exports 2026-11-20      # replay kept exports
    python -m flows.partyhelp_sync backfill --start 2026-11-01 --end 2026-11-20

Per table: plan -> export chunks (MySQL -> Avro in GCS) -> manifest -> load (GCS ->
BigQuery); tables run concurrently. The billing view is refreshed once the table it
reads has loaded. The command exits non-zero when any table failed, naming it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Sequence
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from tasks import prefect_tasks as t
from tasks.errors import DamagedExportError, SyncError
from tasks.export import iso, utc_now
from tasks.logs import get_logger
from tasks.report import TableOutcome, audit_row, summary_markdown
from tasks.settings import env_choice, env_int
from tasks.specs import SALES_BILLING_SUMMARY, TABLES, select_tables

ARTIFACT_KEY = "partyhelp-sync-summary"


class SyncFailed(SyncError):
    """One or more tables failed; the message names each with its cause."""


def build_task_runner() -> TaskRunner[Any]:
    """Threads by default; a Dask cluster when ``PARTYHELP_TASK_RUNNER=dask``."""
    if env_choice("PARTYHELP_TASK_RUNNER", "threads", ("threads", "dask")) == "dask":
        from prefect_dask import DaskTaskRunner

        address = os.environ.get("PARTYHELP_DASK_ADDRESS")
        if address:
            return DaskTaskRunner(address=address)
        workers = env_int("PARTYHELP_DASK_WORKERS", 2)
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1,
                                              "processes": True})
    return ThreadPoolTaskRunner(max_workers=env_int("PARTYHELP_MAX_WORKERS", 8))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _settle(future: PrefectFuture[Any]) -> tuple[Any, str | None, BaseException | None]:
    """(result, None, None) for a completed future, else (None, first error line, the task's
    exception when there is one)."""
    future.wait()
    state = future.state
    if state.is_completed():
        return future.result(), None, None
    try:
        future.result()
    except BaseException as exc:  # the task's own exception, re-raised by Prefect
        return None, _first_line(exc), exc
    return None, state.message or state.name, None


def _outcome_of(future: PrefectFuture[Any]) -> tuple[Any, str | None]:
    """(result, None) for a completed future, (None, first error line) otherwise."""
    result, error, _ = _settle(future)
    return result, error


def _named(table: str, error: str) -> str:
    return error if error.startswith(table) else f"{table}: {error}"


def _committed(table: str, manifest: PrefectFuture[Any],
               chunks: list[PrefectFuture[Any]]) -> tuple[Any, str | None]:
    """(the manifest, None), or (None, the error, named): a failed chunk leaves the manifest
    task unrun, so the chunk's own error is the one reported."""
    result, error = _outcome_of(manifest)
    if error:
        error = next((e for e in (_outcome_of(c)[1] for c in chunks) if e), error)
        return None, _named(table, error)
    return result, None


def _export_again(table: str, day: dt.date, run_id: str | None,
                  replaces: str) -> tuple[Any, str | None]:
    """Export a table afresh in place of a damaged export: (the manifest, None) or
    (None, the error). A new plan (its inputs name the damaged export) gives new task
    runs, not the cached ones."""
    plan, error = _outcome_of(t.plan_export.submit(table, day, run_id, replaces))
    if error:
        return None, _named(table, error)
    chunks = [t.export_chunk.submit(plan, i) for i in range(len(plan.chunks))]
    return _committed(table, t.commit_manifest.submit(plan, chunks), chunks)


@flow(name="partyhelp-bigquery-sync", task_runner=build_task_runner(), persist_result=True,
      log_prints=True)
def partyhelp_bigquery_sync(
    sync_date: dt.date | None = None,
    tables: list[str] | None = None,
    from_exports: bool = False,
) -> dict[str, Any]:
    """Sync the Partyhelp reporting tables to BigQuery for one day.

    With ``from_exports`` the day's kept Avro exports are reloaded (MySQL is not read):
    a replay. Returns a per-table summary; raises ``SyncFailed`` naming failed tables.
    """
    log = get_logger()
    settings = t.runtime_settings()  # a missing setting fails here, naming the variable
    specs = select_tables(tables)
    names = [s.name for s in specs]
    day = t.resolve_sync_date(sync_date, settings.timezone)
    run_id = flow_run.get_id()
    mode = "replay" if from_exports else "sync"
    log.info("%s of %s for %s into %s.%s", mode, ", ".join(names), day.isoformat(),
             settings.bq_project, settings.bq_dataset)
    outcomes = {name: TableOutcome(name, mode, day.isoformat(), iso(utc_now())) for name in names}
    manifests: dict[str, PrefectFuture[Any]] = {}
    chunks: dict[str, list[PrefectFuture[Any]]] = {}
    if from_exports:
        manifests = {name: t.find_export.submit(name, day) for name in names}
        # A replay is all or nothing: every manifest and part is checked before any load.
        refused = [error for error in (_outcome_of(f)[1] for f in manifests.values()) if error]
        if refused:
            raise SyncFailed("replay refused, nothing was changed: " + "; ".join(refused))
    else:
        t.check_source_schema(names)  # drift fails the run before anything is written
        plans = {name: t.plan_export.submit(name, day, run_id) for name in names}
        for name, plan_future in plans.items():
            plan, error = _outcome_of(plan_future)
            if error:
                outcomes[name].error = _named(name, error)
                continue
            chunks[name] = [t.export_chunk.submit(plan, i) for i in range(len(plan.chunks))]
            manifests[name] = t.commit_manifest.submit(plan, chunks[name])
    loads: dict[str, PrefectFuture[Any]] = {}
    for name, future in manifests.items():  # a load starts as soon as its manifest is there
        manifest, error = _committed(name, future, chunks.get(name, []))
        outcomes[name].manifest = manifest
        if error:
            outcomes[name].error = error
        else:
            loads[name] = t.load_table.submit(manifest)

    view_ref = None
    for name, future in loads.items():
        load, error, exc = _settle(future)
        if isinstance(exc, DamagedExportError) and not from_exports:
            # A part of the committed export went missing or changed in GCS (a retry of the
            # run reuses that export). MySQL still holds the rows: export the table again
            # into a new folder, keeping the damaged one as evidence, and load that instead.
            damaged, damage = outcomes[name].manifest, _named(name, error or "")
            log.warning("%s; exporting %s again from MySQL (the damaged export %s is kept)",
                        damage, name, damaged.export_id)
            manifest, error = _export_again(name, day, run_id, damaged.export_id)
            if manifest is not None:
                outcomes[name].manifest = manifest
                load, error = _outcome_of(t.load_table.submit(manifest))
            else:
                error = f"{damage}; exporting it again failed: {error}"
        outcomes[name].load = load
        outcomes[name].ended_at = iso(utc_now())
        if error:
            outcomes[name].error = _named(name, error)
    view_error = None
    if SALES_BILLING_SUMMARY.base.name in names and \
            outcomes[SALES_BILLING_SUMMARY.base.name].status == "Completed":
        view_ref, view_error = _outcome_of(t.refresh_view.submit())
        if view_error and not view_error.startswith(SALES_BILLING_SUMMARY.name):
            view_error = f"{SALES_BILLING_SUMMARY.name}: {view_error}"

    ordered = [outcomes[name] for name in names]
    for outcome in ordered:
        outcome.ended_at = outcome.ended_at or iso(utc_now())
    for outcome in ordered:
        counts = outcome.manifest.quality.get("counts", {}) if outcome.manifest else {}
        if counts:
            examples = outcome.manifest.quality.get("examples", {}) if outcome.manifest else {}
            log.warning("%s data quality: %s", outcome.table, ", ".join(
                f"{k}={v} (e.g. ids {', '.join(map(str, examples.get(k, [])))})"
                for k, v in sorted(counts.items())))
    create_markdown_artifact(key=ARTIFACT_KEY,
                             markdown=summary_markdown(day.isoformat(), mode, ordered, view_ref),
                             description=f"Partyhelp sync {day.isoformat()} ({mode})")
    audit_state = t.record_audit([audit_row(o, run_id) for o in ordered], return_state=True)
    if not audit_state.is_completed():
        log.warning("could not append to ph_sync_runs: %s", audit_state.message)
    failures = [o.error or f"{o.table}: failed" for o in ordered if o.status == "Failed"]
    if view_error:
        failures.append(view_error)
    if failures:
        raise SyncFailed("; ".join(failures))
    return {
        "sync_date": day.isoformat(),
        "mode": mode,
        "tables": {o.table: {"rows": o.load.rows_loaded if o.load else None,
                             "manifest": o.manifest.uri if o.manifest else None}
                   for o in ordered},
        "view": view_ref,
    }


@flow(name="partyhelp-bigquery-backfill", log_prints=True)
def partyhelp_bigquery_backfill(start: dt.date, end: dt.date,
                                tables: list[str] | None = None) -> dict[str, str]:
    """One sync flow run per day from ``start`` to ``end``: replays where exports exist.

    MySQL only holds today's state, so a past day without kept exports cannot be rebuilt;
    such days are reported, not faked. Today (reporting time zone) is synced from MySQL.
    """
    from zoneinfo import ZoneInfo

    from tasks import manifest as mf
    from tasks.clients import storage_client

    settings = t.runtime_settings()
    today = dt.datetime.now(ZoneInfo(settings.timezone)).date()
    client = storage_client(settings)
    results: dict[str, str] = {}
    names = [s.name for s in select_tables(tables)]
    day = start
    while day <= end:
        has_exports = all(
            any(b.name.endswith("/" + mf.MANIFEST_NAME) for b in client.list_blobs(
                settings.gcs_bucket, prefix=mf.table_folder(settings.gcs_prefix, day, n) + "/"))
            for n in names)
        if has_exports or day == today:
            state = partyhelp_bigquery_sync(sync_date=day, tables=names,
                                            from_exports=day != today, return_state=True)
            results[day.isoformat()] = ("replayed" if day != today else "synced") \
                if state.is_completed() else f"failed: {state.message}"
        else:
            results[day.isoformat()] = ("skipped: no kept exports for this day, and it needs "
                                        "the source, but MySQL only holds today's state")
        day += dt.timedelta(days=1)
    get_logger().info("backfill %s..%s: %s", start, end, results)
    if any(r.startswith("failed") for r in results.values()):
        raise SyncFailed("backfill: " + "; ".join(f"{d} {r}" for d, r in results.items()
                                                  if r.startswith("failed")))
    return results


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m flows.partyhelp_sync",
                                     description="Run one Partyhelp -> BigQuery sync.")
    sub = parser.add_subparsers(dest="command")
    backfill = sub.add_parser("backfill", help="one flow run per day of a range")
    backfill.add_argument("--start", type=dt.date.fromisoformat, required=True)
    backfill.add_argument("--end", type=dt.date.fromisoformat, required=True)
    backfill.add_argument("--tables", type=lambda s: s.split(","), default=None)
    parser.add_argument("--date", type=dt.date.fromisoformat, default=None,
                        help="reporting day (default: today in PARTYHELP_TIMEZONE)")
    parser.add_argument("--tables", type=lambda s: s.split(","), default=None,
                        help=f"comma-separated subset of {','.join(TABLES)}")
    parser.add_argument("--from-exports", type=dt.date.fromisoformat, default=None,
                        metavar="YYYY-MM-DD",
                        help="reload that day's kept exports instead of reading MySQL")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; 0 when every table synced, 1 otherwise (the failures are named)."""
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "backfill":
        state = partyhelp_bigquery_backfill(args.start, args.end, args.tables,
                                            return_state=True)
    else:
        day = args.from_exports or args.date
        state = partyhelp_bigquery_sync(sync_date=day, tables=args.tables,
                                        from_exports=args.from_exports is not None,
                                        return_state=True)
    if state.is_completed():
        print(f"partyhelp sync: Completed: {state.result()}")
        return 0
    try:
        state.result()
    except BaseException as exc:
        print(f"partyhelp sync: FAILED: {_first_line(exc)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
