"""Safe to leave alone (issue 10): nothing hangs past its window, a hung run ends TimedOut,
a disaster in the source is not published, and a run that fails early still leaves a trace.

Every fault is real: BigQuery is stopped (connections refused) or frozen with SIGSTOP (a hung
server: connections accepted, nothing answers); rows are really deleted from the source.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from flows.partyhelp_sync import partyhelp_bigquery_sync
from partyhelp_pipeline.settings import read_setting
from partyhelp_pipeline.spec import SALES_BILLING_SUMMARY
from partyhelp_pipeline.warehouse import views
from partyhelp_pipeline.warehouse.target import open_warehouse
from tests.emulators import PrivateEmulators, free_port
from tests.faultkit import (
    Source,
    clock_at,
    environment,
    flow_run_record,
    new_target,
    query,
    source_database,
    sync_on,
    table_states,
)
from tests.partyhelp_pipeline.test_preflight import ALL_CHECKS

pytestmark = pytest.mark.usefixtures("stack", "emulators")  # emulators: conftest.py

DAY = dt.date(2026, 9, 1)
TABLE = "ph_lead_matches"  # referenced by no other table: its rows can really be deleted


@pytest.fixture(scope="module")
def source(stack: None) -> Iterator[Source]:
    with source_database("ph_una", scale=0.02, seed=31, edge_cases=False) as src:
        yield src


def _sync(day: dt.date, tables: list[str], **parameters: Any) -> Any:
    return sync_on(day, tables=tables, **parameters)


def _audit(settings: Any, table: str) -> list[dict[str, Any]]:
    return query(
        settings,
        f"SELECT sync_date, status, rows_loaded, error FROM "
        f"{settings.quoted_table_ref('ph_sync_runs')} "
        f"WHERE table_name = '{table}' ORDER BY ended_at",
    )


def test_a_row_drop_past_the_limit_is_not_published_unless_allowed(source: Source) -> None:
    with environment(new_target(source, "drop")) as settings:
        first = _sync(DAY, [TABLE])
        assert first.is_completed(), first.message
        before = table_states(settings)[TABLE]
        kept = source.scalar("SELECT COUNT(*) FROM lead_matches WHERE id % 5 = 0")
        source.sql("DELETE FROM lead_matches WHERE id % 5 <> 0")  # 80 % gone
        refused = _sync(DAY + dt.timedelta(days=1), [TABLE])
        assert refused.is_failed()
        assert (
            f"{TABLE}: {kept} rows would replace the {before[0]} last published" in refused.message
        )
        assert "--allow-row-drop" in refused.message
        assert table_states(settings)[TABLE] == before  # the previous table is untouched
        allowed = _sync(DAY + dt.timedelta(days=1), [TABLE], allow_row_drop=True)
        assert allowed.is_completed(), allowed.message
        assert table_states(settings)[TABLE][0] == kept
        record = flow_run_record(allowed.state_details.flow_run_id)
        summary = "\n".join(a.data for a in record.artifacts if a.type == "markdown")
        assert (
            f"- {TABLE}: published {kept} rows, down from {before[0]}, as "
            "--allow-row-drop asked" in summary
        )
        assert [r["status"] for r in _audit(settings, TABLE)] == [
            "Completed",
            "Failed",
            "Completed",
        ]


def test_a_run_that_fails_before_exporting_still_leaves_a_row_per_table(source: Source) -> None:
    tables = ["ph_venues", "ph_leads"]
    env = new_target(source, "early", PARTYHELP_MYSQL_PASSWORD="not-the-password")
    with environment(env) as settings:
        state = _sync(DAY, tables)
        assert state.is_failed()
        for table in tables:
            rows = _audit(settings, table)
            assert [r["status"] for r in rows] == ["Failed"], rows
            assert rows[0]["error"].startswith(f"{table}: cannot connect to MySQL"), rows
            assert "not-the-password" not in rows[0]["error"]
            assert rows[0]["rows_loaded"] is None


def test_a_stalled_bigquery_fails_the_run_within_its_retry_window(
    source: Source, emulators: PrivateEmulators
) -> None:
    """BigQuery frozen (a hung server), PARTYHELP_BQ_RETRY_SECONDS=3: the run's pre-flight
    gives up after about 3 s (plus one request's timeout), naming BigQuery, and so does a
    view refresh, not after the library's 600 s (nor the job retry's 10 minutes, which kept
    a view refresh Running for half an hour with BigQuery down)."""
    env = new_target(source, "window", PARTYHELP_BQ_RETRY_SECONDS="3")
    with environment(env) as settings:
        emulators.freeze("bigquery")
        try:
            started = time.monotonic()
            state = _sync(DAY, ["ph_venues"])
            run_seconds = time.monotonic() - started
            started = time.monotonic()
            with pytest.raises(Exception, match=r"(?i)time|connect|retry"):
                views.refresh_view(open_warehouse(settings), SALES_BILLING_SUMMARY)
            view_seconds = time.monotonic() - started
        finally:
            emulators.thaw("bigquery")
    assert state.is_failed()
    assert re.search(
        r"BigQuery at http://127\.0\.0\.1:\d+ did not answer within 3 s "
        r"\(timed out\): is the emulator running\? scripts/stack\.sh status$",
        state.message,
    ), state.message
    # One window and one request's timeout, no task retry: far under one library window.
    assert run_seconds < 60, run_seconds
    assert view_seconds < 30, view_seconds


def _final_state_of_run(day: dt.date, since: dt.datetime, wait_seconds: float) -> Any:
    """The final state of the sync flow run for ``day`` created after ``since``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    async def read() -> list[Any]:  # the newest runs: the server holds the whole session's
        async with get_client() as client:
            return await client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["partyhelp-bigquery-sync"])),
                sort=FlowRunSort.EXPECTED_START_TIME_DESC,
                limit=20,
            )

    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        for run in asyncio.run(read()):
            if (
                run.created
                and run.created >= since
                and run.state
                and run.state.is_final()
                and run.parameters.get("sync_date") == day.isoformat()
            ):
                return run.state
        time.sleep(1)
    raise AssertionError(f"no finished run for {day} within {wait_seconds} s")


def test_a_hung_run_ends_timed_out(source: Source, emulators: PrivateEmulators) -> None:
    """The command, BigQuery frozen and no retry window set: without the flow's timeout the
    load would wait 600 s a request. PARTYHELP_FLOW_TIMEOUT_SECONDS (default 4 h) ends the
    run TimedOut, which the API holds at once (the process itself ends once the stalled
    request gives up)."""
    assert (
        partyhelp_bigquery_sync.timeout_seconds == read_setting("flow_timeout_seconds") == 4 * 3600
    )
    day = DAY + dt.timedelta(days=7)
    env = {
        **os.environ,
        **new_target(source, "hung"),
        **clock_at(day),
        "PARTYHELP_FLOW_TIMEOUT_SECONDS": "15",
    }
    since = dt.datetime.now(dt.UTC)
    emulators.freeze("bigquery")
    command = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flows.partyhelp_sync",
            "--date",
            day.isoformat(),
            "--tables",
            "ph_venues",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        started = time.monotonic()
        state = _final_state_of_run(day, since, wait_seconds=240)
        seconds = time.monotonic() - started
    finally:
        emulators.thaw("bigquery")
        try:
            command.wait(timeout=120)
        except subprocess.TimeoutExpired:
            command.kill()
    assert state.name == "TimedOut", (state.name, state.message)
    assert "timeout of 15" in (state.message or "")
    assert seconds < 90, seconds
    assert command.returncode == 1


def test_a_missing_bucket_fails_the_run_before_mysql_is_read(source: Source) -> None:
    """MySQL points at a closed port: the run's message is about the bucket alone, in one
    line that points to the setup command; the run still leaves its audit rows."""
    env = new_target(
        source,
        "nobucket",
        PARTYHELP_GCS_BUCKET="ph-never-made-bucket",
        PARTYHELP_MYSQL_PORT=str(free_port()),
    )
    with environment(env) as settings:
        state = _sync(DAY, ["ph_venues"])
        rows = _audit(settings, "ph_venues")
    assert state.is_failed()
    message = state.message or ""
    assert (
        "bucket: gs://ph-never-made-bucket does not exist: run python -m scripts.setup" in message
    ), message
    assert "MySQL" not in message and "\n" not in message
    assert [r["status"] for r in rows] == ["Failed"]
    assert "ph-never-made-bucket" in rows[0]["error"]


def test_the_check_command_prints_a_line_per_check_and_exits_by_outcome(source: Source) -> None:
    env = {**os.environ, **new_target(source, "check")}
    good = subprocess.run(
        [sys.executable, "-m", "flows.partyhelp_sync", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert good.returncode == 0, good.stdout + good.stderr
    lines = good.stdout.splitlines()
    assert [line.split()[1].rstrip(":") for line in lines[:7]] == ALL_CHECKS[:7]
    assert all(line.startswith("ok ") for line in lines), lines
    bad = subprocess.run(
        [sys.executable, "-m", "flows.partyhelp_sync", "check"],
        env={**env, "PARTYHELP_GCS_BUCKET": "ph-never-made-bucket"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 1
    assert "FAIL  bucket: gs://ph-never-made-bucket does not exist" in bad.stdout
