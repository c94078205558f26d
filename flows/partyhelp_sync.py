"""The daily Partyhelp -> BigQuery sync, as a Prefect flow and a command.

    python -m flows.partyhelp_sync [--tables ph_venues,ph_leads]   # today, from MySQL
    python -m flows.partyhelp_sync --from-exports 2026-11-20      # replay kept exports
    python -m flows.partyhelp_sync backfill --start 2026-11-01 --end 2026-11-20

Per table: plan -> export chunks (MySQL -> Avro in GCS) -> manifest -> load (GCS ->
BigQuery: the day's history partition, and the current table unless the day is older than
it), see ``flows/table_pipeline.py``; tables run concurrently. The views are refreshed once
the table they read has loaded. The command (its arguments, checks and output in
``flows/cli.py``) exits 1 when a table, a view or a day failed, naming each in its last line,
and 2 on a usage or settings error, before any flow run starts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows import cli
from flows.table_pipeline import run_table_pipelines
from partyhelp_pipeline import manifest as mf
from partyhelp_pipeline import preflight
from partyhelp_pipeline.clock import iso, reporting_today, utc_now
from partyhelp_pipeline.errors import BackfillIncomplete, ServiceUnreachableError, SyncFailed
from partyhelp_pipeline.logs import get_logger
from partyhelp_pipeline.report import (
    RunReport,
    TableOutcome,
    Target,
    days_not_done,
    first_line,
    named,
)
from partyhelp_pipeline.settings import ConfigError, Settings, import_time_setting
from partyhelp_pipeline.spec import TABLES, VIEWS, select_tables
from tasks import gcs_to_bigquery as load
from tasks import health, kept_exports
from tasks import mysql_to_gcs as extract
from tasks import preflight as first_checks
from tasks.options import runtime_settings

ARTIFACT_KEY = "partyhelp-sync-summary"
CONSOLE_SCRIPT = cli.CONSOLE_SCRIPT


def build_task_runner() -> TaskRunner[Any]:
    """Threads by default; a Dask cluster when ``PARTYHELP_TASK_RUNNER=dask``."""
    if import_time_setting("task_runner") == "dask":
        try:
            from prefect_dask.task_runners import DaskTaskRunner
        except ImportError:  # importing never fails: the run stops first (require_dask)
            return ThreadPoolTaskRunner(max_workers=1)

        address = import_time_setting("dask_address")
        if address:
            return DaskTaskRunner(address=address)
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": import_time_setting("dask_workers"),
                "threads_per_worker": 1,
                "processes": True,
            }
        )
    return ThreadPoolTaskRunner(max_workers=import_time_setting("max_workers"))


def require_dask(settings: Settings) -> None:
    """``PARTYHELP_TASK_RUNNER=dask`` needs the ``[dask]`` extra: without it, fail in one
    line naming it, before anything runs."""
    if settings.task_runner != "dask":
        return
    try:
        import prefect_dask.task_runners  # noqa: F401
    except ImportError:
        raise ConfigError(
            "PARTYHELP_TASK_RUNNER=dask, but the Dask runner (prefect-dask) is "
            "not installed: pip install 'partyhelp-bigquery-sync[dask]'"
        ) from None


def find_kept_exports(tables: list[str], day: dt.date) -> dict[str, mf.Manifest]:
    """Every table's newest kept export, all verified before any load: a replay is all or
    nothing."""
    futures = {table: kept_exports.find_export.submit(table, day) for table in tables}
    for future in futures.values():
        future.wait()
    refused = [
        named(table, first_line(exc))
        for table, future in futures.items()
        if (exc := _exception(future)) is not None
    ]
    if refused:
        raise SyncFailed("replay refused, nothing was changed: " + "; ".join(refused))
    return {table: future.result() for table, future in futures.items()}


def _exception(future: Any) -> BaseException | None:
    try:
        future.result()
    except BaseException as exc:
        return exc
    return None


def refresh_views(report: RunReport) -> None:
    """Refresh each view whose table has just loaded."""
    loaded = {o.table for o in report.outcomes if o.status == "Completed"}
    for view in VIEWS:
        if view.base.name not in loaded:
            continue
        try:
            report.views.append(load.refresh_view(view.name, report.sync_date))
        except Exception as exc:
            report.view_errors.append(named(view.name, first_line(exc)))


def publish_health_page(report: RunReport) -> None:
    """Refresh ``ph_sync_health`` and write the run's health page, once a table was
    measured; a failure is a warning (the tables are published)."""
    if not any(o.health for o in report.outcomes):
        return
    try:
        report.health_page = health.publish_health(report.sync_date, list(TABLES))
    except Exception as exc:
        get_logger().warning("could not write the health page: %s", first_line(exc))


def summary_target() -> Target | None:
    """Where the run writes, for the summary's links: the console on GCP, plain names on
    the emulators; None (no links) when the settings cannot be read again."""
    try:
        settings = runtime_settings()
    except Exception:  # the run's own cause must stay the one reported, not this
        return None
    return Target(settings.bq_project, settings.bq_dataset, console=not settings.uses_emulators)


def publish_report(report: RunReport, run_id: str | None, audit: bool = True) -> None:
    """Log quality counters (anomalies as warnings, derived values as information), write
    the run's artifact and append its audit rows (unless ``audit`` is False: BigQuery is
    known not to answer)."""
    log = get_logger()
    for level, line in report.quality_log_lines():
        log.log(level, line)
    report.target = summary_target()
    report.attempt = flow_run.run_count or 1  # above 1 when the run was retried
    create_markdown_artifact(
        key=ARTIFACT_KEY,
        markdown=report.markdown(),
        description=f"Partyhelp sync {report.sync_date} ({report.mode})",
    )
    if not audit:
        log.warning(
            "no row appended to ph_sync_runs: BigQuery did not answer (the summary "
            "artifact and the run's state message name the cause)"
        )
        return
    appended = load.record_audit(report.audit_rows(run_id), return_state=True)
    if not appended.is_completed():
        log.warning("could not append to ph_sync_runs: %s", appended.message)


def fail_early(
    names: list[str], day: dt.date, mode: str, run_id: str | None, cause: BaseException
) -> None:
    """A run that fails before its tables' pipelines still leaves a trace: the summary and
    one ``ph_sync_runs`` row per table with the cause, whenever BigQuery answers (when the
    cause is BigQuery not answering, the append is not tried: it would wait a window more)."""
    outcomes = [TableOutcome(name, mode, day, iso(utc_now())) for name in names]
    for outcome in outcomes:
        outcome.fail(cause)
        outcome.end()
    bigquery_down = isinstance(cause, ServiceUnreachableError) and cause.service == "BigQuery"
    publish_report(RunReport(day, mode, outcomes), run_id, audit=not bigquery_down)


def start_checks(names: list[str], day: dt.date, from_exports: bool) -> dict[str, mf.Manifest]:
    """What must hold before any table is touched; a replay's kept exports."""
    # GCS and BigQuery answer, the bucket and the dataset's location, before MySQL is read
    # (a service down fails the run here, in its window, before anything is exported).
    # Submitted, not called:
    # the task runner starts here (a Dask cluster starts lazily, not from several threads).
    first_checks.cheap_checks.submit().result()
    dataset = load.prepare_dataset(return_state=True)
    if not dataset.is_completed():  # BigQuery may be back by the loads, which ensure it too
        get_logger().warning("could not prepare the dataset yet: %s", dataset.message)
    if from_exports:
        return find_kept_exports(names, day)
    extract.check_source_schema(names)  # drift fails the run before anything is written
    return {}


@flow(
    name="partyhelp-bigquery-sync",
    task_runner=build_task_runner(),
    persist_result=True,
    log_prints=True,
    timeout_seconds=import_time_setting("flow_timeout_seconds"),
)
def partyhelp_bigquery_sync(
    sync_date: dt.date | None = None,
    tables: list[str] | None = None,
    from_exports: bool = False,
    allow_row_drop: bool = False,
    replace_current: bool = False,
    allow_stale: bool = False,
) -> dict[str, Any]:
    """Sync the Partyhelp reporting tables to BigQuery: today's snapshot from MySQL.

    A sync from MySQL is for today in the reporting time zone (``sync_date`` may only name
    that day). With ``from_exports`` the ``sync_date``'s kept Avro exports are reloaded
    (MySQL is not read): a replay, which replaces the day's history partitions, and the
    current tables only when the day is not older than theirs or ``replace_current`` asks.
    ``allow_row_drop`` publishes a table whose rows fell past
    ``PARTYHELP_MAX_ROW_DROP_PERCENT`` (a deliberate purge); ``allow_stale`` one whose
    source is older than its freshness limit. Returns a per-table summary;
    raises ``SyncFailed`` naming failed tables.
    """
    settings = runtime_settings()  # a missing setting fails here, naming the variable
    require_dask(settings)
    names = [spec.name for spec in select_tables(tables)]
    day = extract.resolve_sync_date(sync_date, from_exports)
    mode, run_id = ("replay" if from_exports else "sync"), flow_run.get_id()
    get_logger().info(
        "%s of %s for %s into %s.%s",
        mode,
        ", ".join(names),
        day.isoformat(),
        settings.bq_project,
        settings.bq_dataset,
    )
    try:
        kept = start_checks(names, day, from_exports)
    except Exception as cause:
        fail_early(names, day, mode, run_id, cause)
        raise
    outcomes = run_table_pipelines(
        names, day, run_id, kept, allow_row_drop, replace_current, allow_stale
    )
    report = RunReport(day, mode, outcomes)
    refresh_views(report)
    publish_health_page(report)
    publish_report(report, run_id)
    if report.failures():
        raise SyncFailed("; ".join(report.failures()))
    return report.result()


def backfill_day(day: dt.date, tables: list[str], replay: bool, kept: bool) -> str:
    """One day of a backfill, as its result says it: a replay of its kept exports, today's
    sync from MySQL, or why it was skipped (a past day cannot be read from MySQL)."""
    if replay and not kept:
        return (
            "skipped: no kept exports for this day, and it needs "
            "the source, but MySQL only holds today's state"
        )
    state = partyhelp_bigquery_sync(
        sync_date=day, tables=tables, from_exports=replay, return_state=True
    )
    if not state.is_completed():
        return f"failed: {state.message}"
    return "replayed" if replay else "synced"


@flow(name="partyhelp-bigquery-backfill", log_prints=True)
def partyhelp_bigquery_backfill(
    start: dt.date, end: dt.date, tables: list[str] | None = None
) -> dict[str, str]:
    """One sync flow run per day from ``start`` to ``end``: replays where exports exist.

    MySQL only holds today's state, so a past day without kept exports cannot be rebuilt;
    such days are reported, not faked. Today (reporting time zone) is synced from MySQL.
    A replayed day fills its history partitions; it never puts old data into the current
    tables (each table keeps its newest day).
    """
    settings = runtime_settings()
    today = reporting_today(settings.timezone, settings.clock_date)
    names = [s.name for s in select_tables(tables)]
    kept = set(kept_exports.days_with_kept_exports(start, end, names))
    results: dict[str, str] = {}
    for offset in range((end - start).days + 1):
        day = start + dt.timedelta(days=offset)
        results[day.isoformat()] = backfill_day(day, names, replay=day != today, kept=day in kept)
    get_logger().info("backfill %s..%s: %s", start, end, results)
    # A day not done (failed, or skipped: it cannot be rebuilt) fails the run, in Prefect
    # too: the alert automation sees it. Every other day was done first.
    if days_not_done(results):
        raise BackfillIncomplete(cli.backfill_summary(results), results)
    return results


def _run(args: argparse.Namespace) -> Any:
    """Start the flow the arguments ask for; its final state."""
    if args.command == "backfill":
        return partyhelp_bigquery_backfill(args.start, args.end, args.tables, return_state=True)
    return partyhelp_bigquery_sync(
        sync_date=args.from_exports or args.date,
        tables=args.tables,
        from_exports=args.from_exports is not None,
        allow_row_drop=args.allow_row_drop,
        replace_current=args.replace_current,
        allow_stale=args.allow_stale,
        return_state=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command: 0 done; 1 a table, a view or a day failed (the last line names
    each); 2 a usage or settings error, before any flow run starts (``flows/cli.py``)."""
    parser = cli.build_parser(cli.program_name())
    args = cli.parse_args(parser, sys.argv[1:] if argv is None else argv)
    if args.command == "check":
        return preflight.main_check(load=runtime_settings)
    try:
        settings = runtime_settings()  # every missing or bad setting, named in one line
        require_dask(settings)
    except ValueError as exc:  # ConfigError, or a Secret block that does not exist
        return cli.settings_error(exc)
    except Exception as exc:  # the Prefect API, asked for a Secret block, did not answer
        return cli.failed(exc, args.verbose)
    cli.check_sync_day(parser, args, settings)
    with cli.console_tracebacks(shown=args.verbose):
        try:
            state = _run(args)
        except Exception as exc:  # e.g. the Prefect API did not answer: no run to report
            return cli.failed(exc, args.verbose)
        return cli.finish(state, backfill=args.command == "backfill", verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
