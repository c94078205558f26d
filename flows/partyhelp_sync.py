"""The daily Partyhelp -> BigQuery sync, as a Prefect flow and a command.

    python -m flows.partyhelp_sync [--date YYYY-MM-DD] [--tables ph_venues,ph_leads]
    python -m flows.partyhelp_sync --from-exports 2026-11-20      # replay kept exports
    python -m flows.partyhelp_sync backfill --start 2026-11-01 --end 2026-11-20

Per table: plan -> export chunks (MySQL -> Avro in GCS) -> manifest -> load (GCS ->
BigQuery), see ``flows/table_pipeline.py``; tables run concurrently. The billing view is
refreshed once the table it reads has loaded. The command exits non-zero when any table
failed, naming it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows.table_pipeline import run_table_pipelines
from partyhelp_pipeline import manifest as mf
from partyhelp_pipeline import preflight
from partyhelp_pipeline.clients import storage_client
from partyhelp_pipeline.clock import iso, utc_now
from partyhelp_pipeline.errors import SyncError
from partyhelp_pipeline.logs import get_logger
from partyhelp_pipeline.report import RunReport, TableOutcome, first_line, named
from partyhelp_pipeline.settings import read_setting
from partyhelp_pipeline.spec import SALES_BILLING_SUMMARY, TABLES, select_tables
from tasks import gcs_to_bigquery as load
from tasks import mysql_to_gcs as extract
from tasks import preflight as first_checks
from tasks.options import runtime_settings

ARTIFACT_KEY = "partyhelp-sync-summary"
CONSOLE_SCRIPT = "partyhelp-sync"


class SyncFailed(SyncError):
    """One or more tables failed; the message names each with its cause."""


def build_task_runner() -> TaskRunner[Any]:
    """Threads by default; a Dask cluster when ``PARTYHELP_TASK_RUNNER=dask``."""
    if read_setting("task_runner") == "dask":
        from prefect_dask.task_runners import DaskTaskRunner

        address = read_setting("dask_address")
        if address:
            return DaskTaskRunner(address=address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": read_setting("dask_workers"),
                                              "threads_per_worker": 1, "processes": True})
    return ThreadPoolTaskRunner(max_workers=read_setting("max_workers"))


def find_kept_exports(tables: list[str], day: dt.date) -> dict[str, mf.Manifest]:
    """Every table's newest kept export, all verified before any load: a replay is all or
    nothing."""
    futures = {table: extract.find_export.submit(table, day) for table in tables}
    for future in futures.values():
        future.wait()
    refused = [named(table, first_line(exc)) for table, future in futures.items()
               if (exc := _exception(future)) is not None]
    if refused:
        raise SyncFailed("replay refused, nothing was changed: " + "; ".join(refused))
    return {table: future.result() for table, future in futures.items()}


def _exception(future: Any) -> BaseException | None:
    try:
        future.result()
    except BaseException as exc:
        return exc
    return None


def refresh_view(report: RunReport) -> None:
    """Refresh the billing view when the table it reads has just loaded."""
    base = next((o for o in report.outcomes if o.table == SALES_BILLING_SUMMARY.base.name), None)
    if base is None or base.status != "Completed":
        return
    try:
        report.view = load.refresh_view(report.sync_date)
    except Exception as exc:
        report.view_error = named(SALES_BILLING_SUMMARY.name, first_line(exc))


def publish_report(report: RunReport, run_id: str | None) -> None:
    """Log quality counters, write the run's artifact and append its audit rows."""
    log = get_logger()
    for outcome in report.outcomes:
        if line := outcome.quality_line():
            log.warning("%s data quality: %s", outcome.table, line)
    create_markdown_artifact(key=ARTIFACT_KEY, markdown=report.markdown(),
                             description=f"Partyhelp sync {report.sync_date} ({report.mode})")
    audit = load.record_audit(report.audit_rows(run_id), return_state=True)
    if not audit.is_completed():
        log.warning("could not append to ph_sync_runs: %s", audit.message)


def fail_early(names: list[str], day: dt.date, mode: str, run_id: str | None,
               cause: BaseException) -> None:
    """A run that fails before its tables' pipelines still leaves a trace: the summary and
    one ``ph_sync_runs`` row per table with the cause, whenever BigQuery answers."""
    outcomes = [TableOutcome(name, mode, day.isoformat(), iso(utc_now())) for name in names]
    for outcome in outcomes:
        outcome.fail(cause)
        outcome.end()
    publish_report(RunReport(day.isoformat(), mode, outcomes), run_id)


def start_checks(names: list[str], day: dt.date, from_exports: bool) -> dict[str, mf.Manifest]:
    """What must hold before any table is touched; a replay's kept exports."""
    # The bucket and the dataset's location, before MySQL is read. Submitted, not called:
    # the task runner starts here (a Dask cluster starts lazily, not from several threads).
    first_checks.cheap_checks.submit().result()
    if from_exports:
        return find_kept_exports(names, day)
    extract.check_source_schema(names)  # drift fails the run before anything is written
    return {}


@flow(name="partyhelp-bigquery-sync", task_runner=build_task_runner(), persist_result=True,
      log_prints=True, timeout_seconds=read_setting("flow_timeout_seconds"))
def partyhelp_bigquery_sync(
    sync_date: dt.date | None = None,
    tables: list[str] | None = None,
    from_exports: bool = False,
    allow_row_drop: bool = False,
) -> dict[str, Any]:
    """Sync the Partyhelp reporting tables to BigQuery for one day.

    With ``from_exports`` the day's kept Avro exports are reloaded (MySQL is not read):
    a replay. ``allow_row_drop`` publishes a table whose rows fell past
    ``PARTYHELP_MAX_ROW_DROP_PERCENT`` (a deliberate purge). Returns a per-table summary;
    raises ``SyncFailed`` naming failed tables.
    """
    settings = runtime_settings()  # a missing setting fails here, naming the variable
    names = [spec.name for spec in select_tables(tables)]
    day = extract.resolve_sync_date(sync_date, settings.timezone)
    mode, run_id = ("replay" if from_exports else "sync"), flow_run.get_id()
    get_logger().info("%s of %s for %s into %s.%s", mode, ", ".join(names), day.isoformat(),
                      settings.bq_project, settings.bq_dataset)
    try:
        kept = start_checks(names, day, from_exports)
    except Exception as cause:
        fail_early(names, day, mode, run_id, cause)
        raise
    outcomes = run_table_pipelines(names, day, run_id, kept, allow_row_drop)
    report = RunReport(day.isoformat(), mode, outcomes)
    refresh_view(report)
    publish_report(report, run_id)
    if report.failures():
        raise SyncFailed("; ".join(report.failures()))
    return report.result()


@flow(name="partyhelp-bigquery-backfill", log_prints=True)
def partyhelp_bigquery_backfill(start: dt.date, end: dt.date,
                                tables: list[str] | None = None) -> dict[str, str]:
    """One sync flow run per day from ``start`` to ``end``: replays where exports exist.

    MySQL only holds today's state, so a past day without kept exports cannot be rebuilt;
    such days are reported, not faked. Today (reporting time zone) is synced from MySQL.
    """
    settings = runtime_settings()
    today = dt.datetime.now(ZoneInfo(settings.timezone)).date()
    client = storage_client(settings)
    results: dict[str, str] = {}
    names = [s.name for s in select_tables(tables)]
    day = start
    while day <= end:
        has_exports = all(mf.has_kept_export(client, settings.gcs_bucket, settings.gcs_prefix,
                                             day, name) for name in names)
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
    installed = sys.argv[0].endswith(CONSOLE_SCRIPT)  # the console script of pyproject.toml
    parser = argparse.ArgumentParser(prog=CONSOLE_SCRIPT if installed
                                     else "python -m flows.partyhelp_sync",
                                     description="Run one Partyhelp -> BigQuery sync.")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("check", help="pre-flight check: settings, MySQL, bucket, dataset, "
                                 "BigQuery, drift, chunk plan; writes one test object only")
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
    parser.add_argument("--allow-row-drop", action="store_true",
                        help="publish a table whose rows fell past "
                             "PARTYHELP_MAX_ROW_DROP_PERCENT below its last published count "
                             "(a deliberate purge)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; 0 when every table synced, 1 otherwise (the failures are named)."""
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "check":
        return preflight.main_check(load=runtime_settings)
    if args.command == "backfill":
        state = partyhelp_bigquery_backfill(args.start, args.end, args.tables,
                                            return_state=True)
    else:
        day = args.from_exports or args.date
        state = partyhelp_bigquery_sync(sync_date=day, tables=args.tables,
                                        from_exports=args.from_exports is not None,
                                        allow_row_drop=args.allow_row_drop,
                                        return_state=True)
    if state.is_completed():
        print(f"partyhelp sync: Completed: {state.result()}")
        return 0
    try:
        state.result()
    except BaseException as exc:
        print(f"partyhelp sync: FAILED: {first_line(exc)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
