"""The command a person types (issue 12, section 3): usage and settings errors exit 2 before
any flow run starts; a failure ends in its cause in one line, with no traceback above it
(``--verbose`` shows them); a backfill that could not do every day exits 1 naming those days;
a success prints a small table; ``--help`` is complete.

Most checks call ``main`` in-process with a Prefect API nobody answers: a command that started
a flow run could not, and would exit 1, not 2. One test runs the command twice for real, a
sync whose MySQL port has nobody listening, with and without ``--verbose``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from typing import Any

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Completed, Failed

from flows import cli
from flows.partyhelp_sync import main
from partyhelp_pipeline.clock import SyncDateError, sync_date_for
from partyhelp_pipeline.errors import SyncFailed
from partyhelp_pipeline.settings import declared_settings
from partyhelp_pipeline.spec import TABLES
from tests.conftest import ROOT, create_bucket, sync_environment
from tests.emulators import free_port
from tests.partyhelp_pipeline.test_report import completed_run

TODAY = dt.date(2026, 11, 25)  # the test clock's today (PARTYHELP_CLOCK_DATE)
SKIPPED = (
    "skipped: no kept exports for this day, and it needs the source, but MySQL only "
    "holds today's state"
)


@pytest.fixture()
def settings_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Every required setting, for a bucket and a dataset nobody made, on the test clock."""
    token = secrets.token_hex(4)
    env = sync_environment(
        "ph_nothing",
        "nobody",
        f"ph-cli-{token}",
        f"ph_cli_{token}",
        PARTYHELP_CLOCK_DATE=TODAY.isoformat(),
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@contextlib.contextmanager
def no_prefect_api() -> Iterator[None]:
    """A Prefect API nobody answers, for the block."""
    with temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{free_port()}/api"}):
        yield


def run_main(argv: list[str]) -> int:
    """``main``'s exit code, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def not_today_message() -> str:
    with pytest.raises(SyncDateError) as refused:
        sync_date_for(TODAY - dt.timedelta(days=1), False, TODAY)
    return str(refused.value)


USAGE_ERRORS = [
    (
        ["--date", "2026-13-01"],
        "argument --date: 2026-13-01 is not a date: month 13 does not exist",
    ),
    (
        ["--from-exports", "2026-13-01"],
        "argument --from-exports: 2026-13-01 is not a date: month 13 does not exist",
    ),
    (
        ["--from-exports", "2026-02-30"],
        "argument --from-exports: 2026-02-30 is not a date: "
        "February 2026 has no day 30 (it has 28)",
    ),
    (
        ["--from-exports", "25/11/2026"],
        "argument --from-exports: '25/11/2026': expected YYYY-MM-DD",
    ),
    (
        ["backfill", "--start", "2026-11-01", "--end", "2026-11-32"],
        "argument --end: 2026-11-32 is not a date: November 2026 has no day 32 (it has 30)",
    ),
    (
        ["backfill", "--start", "2026-11-20", "--end", "2026-11-01"],
        "--start 2026-11-20 is after --end 2026-11-01: the range is empty",
    ),
    (
        ["--tables", "ph_leads,ph_vendors"],
        f"argument --tables: unknown table 'ph_vendors'; choose from {', '.join(TABLES)}",
    ),
    (
        ["backfill", "--start", "2026-11-01", "--end", "2026-11-02", "--tables", "leads"],
        f"argument --tables: unknown table 'leads'; choose from {', '.join(TABLES)}",
    ),
    (["--date", (TODAY - dt.timedelta(days=1)).isoformat()], "not today"),
    (
        ["--date", "2026-11-25", "--from-exports", "2026-11-20"],
        "argument --from-exports: not allowed with argument --date",
    ),
    (
        ["--replace-current"],
        "--replace-current goes with --from-exports: a sync from MySQL "
        "always replaces the current tables",
    ),
    (
        ["--date", "2026-11-25", "backfill", "--start", "2026-11-01", "--end", "2026-11-02"],
        "--date: for a sync, not for backfill",
    ),
]


@pytest.mark.parametrize(
    ("argv", "message"), USAGE_ERRORS, ids=[" ".join(argv) for argv, _ in USAGE_ERRORS]
)
def test_usage_errors_exit_2_before_any_flow_run(
    argv: list[str], message: str, settings_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with no_prefect_api():
        code = run_main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    expected = not_today_message() if message == "not today" else message
    assert last_line(err).endswith(f"error: {expected}"), err
    # A mistake in backfill's own options shows backfill's usage, not the top level's.
    own = "backfill " if argv[0] == "backfill" and "--date" not in argv else ""
    assert err.startswith(f"usage: python -m flows.partyhelp_sync {own}["), err


def test_missing_settings_are_named_at_once_before_any_flow_run(
    settings_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    required = [s.variable for s in declared_settings() if s.default == "required"]
    assert len(required) == 4  # and PARTYHELP_BQ_PROJECT, which the emulators name here
    for variable in required:
        monkeypatch.delenv(variable)
    with no_prefect_api():
        code = run_main(["--tables", "ph_venues"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err  # one line, every variable in it
    assert err.startswith("partyhelp sync: settings: ")
    for variable in required:
        assert f"{variable} is not set; it is required" in err


def test_a_backfill_that_could_not_do_every_day_exits_1_naming_them(
    settings_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A real backfill run (the bucket exists, but holds no kept export of those days): the
    command and the flow run in Prefect both say Failed, naming the days (issue 19)."""
    from prefect.client.orchestration import get_client

    from flows import partyhelp_sync

    create_bucket(settings_env["PARTYHELP_GCS_BUCKET"])
    states: list[Any] = []
    run = partyhelp_sync._run
    monkeypatch.setattr(
        partyhelp_sync, "_run", lambda args: states.append(run(args)) or states[-1]
    )  # the run itself unchanged: only its state kept
    code = run_main(
        ["backfill", "--start", "2026-11-20", "--end", "2026-11-22", "--tables", "ph_venues"]
    )
    out, err = capsys.readouterr()
    assert code == 1
    assert out.splitlines()[1:] == [f"  2026-11-2{d}  {SKIPPED}" for d in (0, 1, 2)]
    summary = f"backfill: 3 of 3 days not done: 2026-11-20, 2026-11-21, 2026-11-22 {SKIPPED}"
    assert last_line(err) == f"partyhelp sync: FAILED: {summary}"
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(states[0].state_details.flow_run_id)
    assert flow_run.state is not None and flow_run.state.is_failed(), flow_run.state
    assert summary in (flow_run.state.message or "")


def test_a_backfill_names_only_the_days_it_could_not_do(capsys: pytest.CaptureFixture[str]) -> None:
    results = {"2026-11-24": SKIPPED, "2026-11-25": "replayed", "2026-11-26": "synced"}
    assert cli.finish(Completed(data=results), backfill=True, verbose=False) == 1
    assert last_line(capsys.readouterr().err) == (
        f"partyhelp sync: FAILED: backfill: 1 of 3 days not done: 2026-11-24 {SKIPPED}"
    )
    done = {"2026-11-25": "replayed", "2026-11-26": "synced"}
    assert cli.finish(Completed(data=done), backfill=True, verbose=False) == 0
    assert capsys.readouterr().out.splitlines() == [
        "  day         result",
        "  2026-11-25  replayed",
        "  2026-11-26  synced",
        "partyhelp sync: Completed: backfill of 2 days",
    ]


def test_success_prints_a_small_table_and_a_failure_its_cause(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result: dict[str, Any] = completed_run().result()
    assert cli.finish(Completed(data=result), backfill=False, verbose=False) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "partyhelp sync: Completed: sync of 2026-11-25"
    assert out[1].split() == ["table", "rows", "seconds", "state"]
    assert out[2].split() == ["ph_leads", "1,000,000", "90.0", "Completed"]
    assert out[-1] == "  views refreshed: ph_sales_billing_summary"
    assert max(map(len, out)) <= 110 and "{" not in "".join(out)
    failure = SyncFailed("ph_leads: cannot connect to MySQL\nthe rest of a long message")
    assert cli.finish(Failed(data=failure), backfill=False, verbose=False) == 1
    assert capsys.readouterr().err == "partyhelp sync: FAILED: ph_leads: cannot connect to MySQL\n"


def test_help_is_complete(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "60")  # a narrow terminal: names are never broken
    assert run_main(["--help"]) == 0
    top = capsys.readouterr().out
    assert run_main(["backfill", "--help"]) == 0
    backfill = capsys.readouterr().out
    for option in ("--date YYYY-MM-DD", "--from-exports YYYY-MM-DD"):
        assert option in top
    for option in ("--start YYYY-MM-DD", "--end YYYY-MM-DD"):
        assert re.search(rf"^  {option} +\w", backfill, re.MULTILINE), option  # with help
    assert re.search(r"^ {4}backfill +one flow run per day", top, re.MULTILINE)
    for text in (top, backfill):
        assert re.search(
            r"^  --tables TABLE\[,TABLE\.\.\.\]\n +only these tables", text, re.MULTILINE
        )
        for table in TABLES:  # one a line, whole
            assert re.search(rf"^  {table}$", text, re.MULTILINE), table
    required = [s.variable for s in declared_settings() if s.default.startswith("required")]
    settings_part = top[top.index("required settings") : top.index("exit codes:")]
    assert [line.split()[0] for line in settings_part.splitlines()[1:] if line] == required
    for code, meaning in (
        ("0", "done"),
        ("1", "a table, a view or a day failed"),
        ("2", "usage or settings error"),
    ):
        assert re.search(rf"^  {code}  {meaning}", top, re.MULTILINE)
    assert run_main(["--version"]) == 0
    assert (
        capsys.readouterr().out.strip().endswith(f" {metadata.version('partyhelp-bigquery-sync')}")
    )


def test_a_failure_ends_in_its_cause_in_one_line_and_verbose_shows_tracebacks(stack: None) -> None:
    """Two real runs of the command, at once: MySQL's port has nobody listening."""
    token, port = secrets.token_hex(4), free_port()
    bucket = f"ph-cli-{token}"
    create_bucket(bucket)
    commands = {}
    for verbose in (False, True):
        env = {
            **os.environ,
            **sync_environment(
                "ph_nothing",
                "nobody",
                bucket,
                f"ph_cli_{token}_{int(verbose)}",
                PARTYHELP_MYSQL_PORT=str(port),
                PARTYHELP_TASK_RETRIES="0",
            ),
        }
        commands[verbose] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flows.partyhelp_sync",
                "--tables",
                "ph_venues",
                *(["--verbose"] if verbose else []),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    outputs = {verbose: command.communicate(timeout=300) for verbose, command in commands.items()}
    cause = f"partyhelp sync: FAILED: cannot connect to MySQL at 127.0.0.1:{port} as nobody"
    for verbose, (out, err) in outputs.items():
        assert commands[verbose].returncode == 1, err[-3000:]
        assert last_line(err).startswith(cause), err[-3000:]
        assert ("Traceback (most recent call last)" in out + err) is verbose, err[-3000:]
    quiet = outputs[False][1]
    # Prefect's own lines stay, one line each: the task's failure and the run's state.
    assert "Task run failed with exception: SourceUnavailableError(" in quiet, quiet[-4000:]
    assert (
        'Finished in state Failed("Flow run encountered an exception: '
        "SourceUnavailableError: cannot connect to MySQL" in quiet
    ), quiet[-4000:]
