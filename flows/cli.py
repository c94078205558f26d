"""The command's parts: its arguments and usage checks, the console without tracebacks, and
what it prints at the end. ``flows/partyhelp_sync.py``'s ``main`` puts them together.

Exit codes: 0 done; 1 a table, a view or a day failed or could not be done (the last line
names each); 2 a usage or settings error, found before any flow run starts.
"""

from __future__ import annotations

import argparse
import calendar
import contextlib
import datetime as dt
import logging
import re
import sys
import textwrap
import traceback
from collections.abc import Iterator, Sequence
from importlib import metadata
from typing import Any, cast

from prefect.client.schemas.objects import State

from partyhelp_pipeline.clock import SyncDateError, reporting_today, sync_date_for
from partyhelp_pipeline.errors import ServiceUnreachableError
from partyhelp_pipeline.report import days_not_done, first_line
from partyhelp_pipeline.settings import Settings, declared_settings
from partyhelp_pipeline.source import DISTRIBUTION
from partyhelp_pipeline.spec import TABLES

CONSOLE_SCRIPT = "partyhelp-sync"  # the console script of pyproject.toml
PREFIX = "partyhelp sync"
USAGE_ERROR = 2
DATE_FORMAT = "YYYY-MM-DD"
_DAY_SHAPE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
# Help text is wrapped here, at spaces only, never inside a name (RawTextHelpFormatter).
HELP_WIDTH, DESCRIPTION_WIDTH = 54, 78
# Options of a sync from the command line, meaningless to `check` and `backfill`.
SYNC_ONLY = {
    "date": "--date",
    "from_exports": "--from-exports",
    "allow_row_drop": "--allow-row-drop",
    "allow_stale": "--allow-stale",
    "replace_current": "--replace-current",
}


def iso_day(text: str) -> dt.date:
    """An argument's day, ``YYYY-MM-DD``; one in that shape that is no date says why
    (``2026-13-01 is not a date: month 13 does not exist``)."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        pass
    shape = _DAY_SHAPE.fullmatch(text)
    if not shape:
        raise argparse.ArgumentTypeError(f"{text!r}: expected {DATE_FORMAT}")
    year, month, day = map(int, shape.groups())
    days = calendar.monthrange(year, month)[1] if 1 <= month <= 12 else 0
    if not days:
        why = f"month {month} does not exist"
    elif not 1 <= day <= days:
        why = f"{calendar.month_name[month]} {year} has no day {day} (it has {days})"
    else:  # e.g. year 0000: the date type's own reason
        try:
            dt.date(year, month, day)
            why = "not an ISO date"
        except ValueError as exc:
            why = str(exc)
    raise argparse.ArgumentTypeError(f"{text} is not a date: {why}")


def table_names(text: str) -> list[str]:
    """An argument's comma-separated tables, each one of ``TABLES``."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in TABLES]
    if unknown or not names:
        problem = f"unknown table {', '.join(map(repr, unknown))}" if unknown else "no table"
        raise argparse.ArgumentTypeError(f"{problem}; choose from {', '.join(TABLES)}")
    return list(dict.fromkeys(names))


def _wrap(text: str, width: int = HELP_WIDTH) -> str:
    return textwrap.fill(text, width, break_on_hyphens=False, break_long_words=False)


def _tables_epilog() -> list[str]:
    return [
        "tables (--tables takes one or more, comma-separated; default: all):",
        *(f"  {name}" for name in TABLES),
    ]


def installed_version() -> str:
    """The installed distribution's version."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "(not installed: pip install -e .)"


def program_name() -> str:
    """``partyhelp-sync`` when run as the installed command, else the module's command."""
    return (
        CONSOLE_SCRIPT if sys.argv[0].endswith(CONSOLE_SCRIPT) else "python -m flows.partyhelp_sync"
    )


def epilog() -> str:
    """The tables, the required settings and the exit codes, a line each."""
    required = []
    for setting in declared_settings():
        if setting.default.startswith("required"):
            note = setting.default.removeprefix("required").replace("`", "").strip()
            required.append(f"  {setting.variable}" + (f"  {note}" if note else ""))
    return "\n".join(
        [
            *_tables_epilog(),
            "",
            "required settings (environment variables; all of them: README, Configuration):",
            *required,
            "",
            "exit codes:",
            "  0  done: every table synced, every day of a backfill replayed or synced",
            "  1  a table, a view or a day failed or could not be done (the last line names each)",
            "  2  usage or settings error: nothing was run",
            "",
            "examples:",
            "  %(prog)s",
            "  %(prog)s --tables ph_venues,ph_leads",
            "  %(prog)s --from-exports 2026-11-20",
            "  %(prog)s backfill --start 2026-11-01 --end 2026-11-20",
            "  %(prog)s check",
        ]
    )


def _verbose(parser: argparse.ArgumentParser, top: bool) -> None:
    # A subcommand's copy must not reset the top level's value: SUPPRESS leaves it alone.
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help=_wrap("show tracebacks (by default a failure ends in one line naming its cause)"),
    )


def _tables(parser: argparse.ArgumentParser, top: bool) -> None:
    parser.add_argument(
        "--tables",
        type=table_names,
        metavar="TABLE[,TABLE...]",
        default=None if top else argparse.SUPPRESS,
        help=_wrap("only these tables (listed below); default: all"),
    )


def _sync_options(parser: argparse.ArgumentParser) -> None:
    day = parser.add_mutually_exclusive_group()
    day.add_argument(
        "--date",
        type=iso_day,
        metavar=DATE_FORMAT,
        help=_wrap(
            "a sync from MySQL is a snapshot of now: its day is today in PARTYHELP_TIMEZONE, "
            "and another day is refused (use --from-exports or backfill)"
        ),
    )
    day.add_argument(
        "--from-exports",
        type=iso_day,
        metavar=DATE_FORMAT,
        help=_wrap("reload that day's kept exports instead of reading MySQL (a replay)"),
    )
    _tables(parser, top=True)
    parser.add_argument(
        "--allow-row-drop",
        action="store_true",
        help=_wrap(
            "publish a table whose rows fell past PARTYHELP_MAX_ROW_DROP_PERCENT below its last "
            "published count (a deliberate purge)"
        ),
    )
    parser.add_argument(
        "--allow-stale",
        action="store_true",
        help=_wrap(
            "publish a table whose newest source row is older than its error_after or "
            "PARTYHELP_MAX_SOURCE_AGE_HOURS (a quiet source you have checked); the summary "
            "says so"
        ),
    )
    parser.add_argument(
        "--replace-current",
        action="store_true",
        help=_wrap(
            "with --from-exports: also replace the current tables, even with a day older than "
            "theirs (a deliberate rollback)"
        ),
    )


def build_parser(prog: str) -> argparse.ArgumentParser:
    """The command's arguments: a sync's options, and the ``check`` and ``backfill``
    commands, each with help; dates shown as ``YYYY-MM-DD``."""
    formatter = argparse.RawTextHelpFormatter
    parser = argparse.ArgumentParser(
        prog=prog,
        formatter_class=formatter,
        epilog=epilog(),
        description=_wrap(
            "Run one Partyhelp -> BigQuery sync: by default today's snapshot from MySQL, every "
            "table; or a replay of a day's kept exports; or a backfill of days; or a pre-flight "
            "check.",
            DESCRIPTION_WIDTH,
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {installed_version()}")
    _verbose(parser, top=True)
    _sync_options(parser)
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    _check_command(commands, formatter)
    _backfill_command(commands, formatter)
    return parser


def _check_command(commands: Any, formatter: type[argparse.HelpFormatter]) -> None:
    """``check``: the pre-flight check."""
    check = commands.add_parser(
        "check",
        formatter_class=formatter,
        help=_wrap(
            "pre-flight check: settings, MySQL, bucket, dataset, BigQuery, drift, "
            "chunk plan; one line per check; writes one test object only"
        ),
        description=_wrap(
            "Check what a sync needs, one line per check; nothing is changed "
            "but one test object written to the bucket and deleted. Exits 0 "
            "when every check passed, 1 otherwise.",
            DESCRIPTION_WIDTH,
        ),
    )
    _verbose(check, top=False)


def _backfill_command(commands: Any, formatter: type[argparse.HelpFormatter]) -> None:
    """``backfill``: one flow run per day of a range."""
    backfill = commands.add_parser(
        "backfill",
        formatter_class=formatter,
        epilog="\n".join(_tables_epilog()),
        help=_wrap(
            "one flow run per day of a range: a replay where the day's exports are "
            "kept, a sync from MySQL for today; other days cannot be rebuilt"
        ),
        description=_wrap(
            "One flow run per day from --start to --end (both included): a day with kept "
            "exports is replayed into its history partitions; today is synced from MySQL; "
            "any other day cannot be rebuilt (MySQL only holds today's state) and makes "
            "the command exit 1, naming it.",
            DESCRIPTION_WIDTH,
        ),
    )
    backfill.add_argument(
        "--start",
        type=iso_day,
        required=True,
        metavar=DATE_FORMAT,
        help=_wrap("first day of the range"),
    )
    backfill.add_argument(
        "--end",
        type=iso_day,
        required=True,
        metavar=DATE_FORMAT,
        help=_wrap("last day of the range (included)"),
    )
    _tables(backfill, top=False)
    _verbose(backfill, top=False)


def command_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The parser of ``command`` (its usage is the one a mistake in its options shows)."""
    for action in parser._actions:  # argparse keeps its subparsers nowhere public
        if isinstance(action, argparse._SubParsersAction):
            return cast(argparse.ArgumentParser, action.choices[command])
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """The arguments, checked: every usage error exits 2 here, before any flow run."""
    args = parser.parse_args(argv)
    if args.command:
        misplaced = [flag for dest, flag in SYNC_ONLY.items() if getattr(args, dest)]
        if args.command == "check" and args.tables:
            misplaced.append("--tables")
        if misplaced:
            parser.error(f"{', '.join(misplaced)}: for a sync, not for {args.command}")
    if args.command == "backfill" and args.start > args.end:
        command_parser(parser, "backfill").error(
            f"--start {args.start} is after --end {args.end}: the range is empty"
        )
    if args.replace_current and args.from_exports is None:
        parser.error(
            "--replace-current goes with --from-exports: a sync from MySQL "
            "always replaces the current tables"
        )
    return args


def check_sync_day(
    parser: argparse.ArgumentParser, args: argparse.Namespace, settings: Settings
) -> None:
    """A sync from MySQL is for today: ``--date`` naming another day is a usage error (the
    flow checks it too, for runs started elsewhere)."""
    if args.command or args.from_exports is not None or args.date is None:
        return
    try:
        sync_date_for(args.date, False, reporting_today(settings.timezone, settings.clock_date))
    except SyncDateError as exc:
        parser.error(str(exc))


def settings_error(exc: BaseException) -> int:
    """Print a settings error (every bad variable, in one line); the usage exit code."""
    print(f"{PREFIX}: settings: {first_line(exc)}", file=sys.stderr)
    return USAGE_ERROR


class _WithoutTraceback(logging.Filter):
    """Hands the console a copy of a record without its traceback; the record itself, with
    it, still goes to the Prefect API (the UI shows it)."""

    def __init__(self, handler: logging.Handler) -> None:
        super().__init__()
        self.handler = handler

    def filter(self, record: logging.LogRecord) -> bool:
        if not (record.exc_info or record.exc_text or record.stack_info):
            return True
        quiet = logging.makeLogRecord(record.__dict__)
        quiet.exc_info, quiet.exc_text, quiet.stack_info = None, None, None
        self.handler.handle(quiet)
        return False


@contextlib.contextmanager
def console_tracebacks(shown: bool) -> Iterator[None]:
    """Unless ``shown`` (``--verbose``), Prefect's console handler prints no tracebacks
    for the block: a failed task or flow run's line stays one line."""
    if shown:
        yield
        return
    from prefect.logging.handlers import PrefectConsoleHandler

    handlers = [h for h in logging.getLogger().handlers if isinstance(h, PrefectConsoleHandler)]
    filters = [(handler, _WithoutTraceback(handler)) for handler in handlers]
    for handler, quiet in filters:
        handler.addFilter(quiet)
    try:
        yield
    finally:
        for handler, quiet in filters:
            handler.removeFilter(quiet)


def failed(exc: BaseException, verbose: bool) -> int:
    """Print the cause in one line, last (its traceback above it with ``--verbose``, and
    the library's own text of a service that did not answer); 1."""
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
        if isinstance(exc, ServiceUnreachableError):  # what the client itself said
            print(f"{PREFIX}: the library said: {exc.detail}", file=sys.stderr)
    print(f"{PREFIX}: FAILED: {first_line(exc)}", file=sys.stderr, flush=True)
    return 1


def finish(state: State[Any], backfill: bool, verbose: bool) -> int:
    """Print how the run ended: a table of tables (or days) when it completed, else the
    cause in one line; the exit code."""
    if not state.is_completed():
        try:
            state.result()
        except BaseException as exc:
            days = getattr(exc, "results", None)  # a backfill's days, done or not
            if backfill and isinstance(days, dict):
                print("\n".join(backfill_lines(days)), flush=True)
            return failed(exc, verbose)
        return failed(RuntimeError(state.message or str(state.name)), verbose)
    result = state.result()
    if backfill:
        return _finish_backfill(result)
    print(f"{PREFIX}: Completed: {result['mode']} of {result['sync_date']}")
    print("\n".join(result_lines(result)), flush=True)
    return 0


def backfill_summary(results: dict[str, str]) -> str:
    """``backfill: 1 of 3 days not done: 2026-11-24 skipped: ...``: the days not done, those
    of one reason together (the backfill flow run's failure message, and the last line)."""
    missing = days_not_done(results)
    by_reason: dict[str, list[str]] = {}
    for day, reason in missing.items():
        by_reason.setdefault(reason, []).append(day)
    named = "; ".join(f"{', '.join(days)} {reason}" for reason, days in by_reason.items())
    return f"backfill: {len(missing)} of {len(results)} days not done: {named}"


def _finish_backfill(results: dict[str, str]) -> int:
    print("\n".join(backfill_lines(results)), flush=True)
    if not days_not_done(results):
        print(f"{PREFIX}: Completed: backfill of {len(results)} days")
        return 0
    return failed(RuntimeError(backfill_summary(results)), verbose=False)


def result_lines(result: dict[str, Any]) -> list[str]:
    """A sync's result as the command prints it: a row per table (rows, seconds of its own
    work, state), then the views refreshed."""
    tables: dict[str, dict[str, Any]] = result.get("tables", {})
    width = max([len("table"), *map(len, tables)])
    lines = [f"  {'table':<{width}}  {'rows':>11}  {'seconds':>8}  state"]
    for table, row in tables.items():
        rows = "" if row.get("rows") is None else f"{row['rows']:,}"
        seconds = "" if row.get("seconds") is None else f"{row['seconds']:.1f}"
        state = row.get("state", "Completed")
        if row.get("current_replaced") is False:
            state += " (history only: the current table keeps a newer day)"
        lines.append(f"  {table:<{width}}  {rows:>11}  {seconds:>8}  {state}")
    views = [view.rsplit(".", 1)[-1] for view in result.get("views") or []]  # names only
    lines.append(f"  views refreshed: {', '.join(views) if views else 'none'}")
    return lines


def backfill_lines(results: dict[str, str]) -> list[str]:
    """A backfill's days as the command prints them: a row per day with its result."""
    return ["  day         result", *(f"  {day}  {outcome}" for day, outcome in results.items())]
