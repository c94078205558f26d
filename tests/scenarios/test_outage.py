"""A dependency down at the start of a run (issue 19, section 1), on the real local stack.

BigQuery, then GCS, is stopped for real (``scripts/stack.sh stop-...`` on this module's own
emulator pair: the shared emulators are never touched), and a sync runs twice: as the
command (its exit code, wall time and last line) and as a flow run on the local Prefect
server (its state, duration, task runs, artifact and ``ph_sync_runs`` rows). Each must fail
at the pre-flight, before MySQL is read, within the window plus one request's timeout, with
nothing exported to GCS, no task retried, and one sentence naming the service, its address
and what to do. A wrong MySQL password names the user and the setting (or Secret block) the
password came from, never the password. Run with ``-s`` to see the measured durations.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from flows.partyhelp_sync import ARTIFACT_KEY
from partyhelp_pipeline.clients import bigquery_client
from partyhelp_pipeline.preflight import CALL_TIMEOUT_SECONDS
from tests.conftest import READER_PASSWORD, ROOT
from tests.faultkit import (
    PrivateEmulators,
    Source,
    clock_at,
    env_vars,
    environment,
    flow_run_record,
    new_target,
    object_names,
    query,
    source_database,
    sync_on,
)

pytestmark = pytest.mark.usefixtures("stack", "emulators")  # emulators: conftest.py

DAY = dt.date(2026, 11, 25)
TABLES = ["ph_venues", "ph_lead_purchases"]
WINDOW = 4  # PARTYHELP_BQ_RETRY_SECONDS and PARTYHELP_GCS_RETRY_SECONDS here
# The bound of a run whose service is down from the start: the pre-flight's one call, its
# window and (a hung server) one request's timeout; nothing is retried (README, Retries).
FLOW_BOUND = WINDOW + CALL_TIMEOUT_SECONDS
COMMAND_START = 25  # the command's own start (Python, Prefect) and end, on a busy machine
HINT = "is the emulator running? scripts/stack.sh status"
NO_AUDIT = "no row appended to ph_sync_runs: BigQuery did not answer"


@pytest.fixture(scope="module")
def source(stack: None) -> Iterator[Source]:
    with source_database("ph_out", scale=0.01, seed=19, edge_cases=False) as made:
        yield made


def _target(source: Source, emulators: PrivateEmulators, label: str) -> dict[str, str]:
    """A new bucket (on the private GCS) and dataset name, with short windows."""
    with env_vars(emulators.client_env):
        env = new_target(source, label)
    return {
        **env,
        **emulators.client_env,
        **clock_at(DAY),
        "PARTYHELP_BQ_RETRY_SECONDS": str(WINDOW),
        "PARTYHELP_GCS_RETRY_SECONDS": str(WINDOW),
    }


def _command(env: dict[str, str], *extra: str) -> tuple[int, float, list[str]]:
    """The command, as an operator runs it: exit code, wall seconds, stderr's lines."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "flows.partyhelp_sync", "--tables", ",".join(TABLES), *extra],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, time.monotonic() - started, done.stderr.strip().splitlines()


def _flow_run(env: dict[str, str], final_log: str | None = None) -> tuple[Any, Any]:
    """The flow run, in this process: its final state and its record in the Prefect API
    (once ``final_log`` has reached it: logs arrive in batches)."""
    with env_vars(env):
        state = sync_on(DAY, tables=TABLES)
    record = flow_run_record(state.state_details.flow_run_id, final_log=final_log)
    return state, record


def _seconds(record: Any) -> float:
    run = record.flow_run
    return float((run.end_time - run.start_time).total_seconds())


def _summary(record: Any) -> str:
    (artifact,) = [a for a in record.artifacts if a.key == ARTIFACT_KEY]
    return str(artifact.data)


def _task(record: Any, name: str) -> Any:
    """The one task run of task ``name`` (Prefect names a run ``name-xyz``)."""
    (found,) = [t for t in record.task_runs if t.name.rsplit("-", 1)[0] == name]
    return found


def _assert_failed_at_the_preflight(record: Any) -> None:
    """The pre-flight ran once (not retried), and nothing after it: no schema check of
    MySQL, no export, no load."""
    preflight = _task(record, "preflight")
    assert preflight.state.is_failed() and preflight.run_count == 1
    assert not [
        t.name
        for t in record.task_runs
        if t.name.startswith(("check-source-schema", "export-", "load-", "plan-"))
    ]


def _run_with_stopped(
    service: str,
    sentence: str,
    env: dict[str, str],
    emulators: PrivateEmulators,
    **flow_run_options: Any,
) -> Any:
    """Stop ``service`` for real (its process group is gone), run the command, start it
    again; the flow run's record. Asserts the bounds, the one sentence as the command's
    last line and the run's message, and the pre-flight's one attempt; prints the times."""
    emulators.stop(service)
    try:
        assert not emulators.is_up(service)
        code, wall, lines = _command(env)
        state, record = _flow_run(env, **flow_run_options)
    finally:
        emulators.start(service)
    took = _seconds(record)
    print(
        f"\n{service} stopped: the command failed in {wall:.1f} s, the flow run in "
        f"{took:.1f} s (window {WINDOW} s); last line: {lines[-1]}"
    )
    assert code == 1 and lines[-1] == f"partyhelp sync: FAILED: {sentence}", lines[-5:]
    assert wall < FLOW_BOUND + COMMAND_START
    assert state.is_failed() and took < FLOW_BOUND, (took, state.message)
    assert (
        state.message == f"Flow run encountered an exception: ServiceUnreachableError: {sentence}"
    )
    _assert_failed_at_the_preflight(record)
    return record


def test_bigquery_stopped_fails_the_run_in_the_window_before_exporting(
    source: Source, emulators: PrivateEmulators
) -> None:
    env = _target(source, emulators, "bqdown")
    sentence = (
        f"BigQuery at {emulators.client_env['BIGQUERY_EMULATOR_HOST']} did not answer "
        f"within {WINDOW} s (connection refused): {HINT}"
    )
    record = _run_with_stopped("bigquery", sentence, env, emulators, final_log=NO_AUDIT)
    with environment(env) as settings:
        assert object_names(settings) == set()  # no part, no manifest: nothing exported
        summary = _summary(record)
        for table in TABLES:
            assert f"- **{table}**: {sentence}" in summary
        # BigQuery did not answer, so no ph_sync_runs row could be written (nor was one
        # tried: it would have waited a window more); the dataset was never created.
        with pytest.raises(gexc.NotFound):
            bigquery_client(settings).get_dataset(settings.bq_dataset)
    assert any(NO_AUDIT in m for m in record.messages())


def test_gcs_stopped_fails_the_run_in_the_window_and_records_why(
    source: Source, emulators: PrivateEmulators
) -> None:
    env = _target(source, emulators, "gcsdown")
    sentence = (
        f"GCS at {emulators.client_env['STORAGE_EMULATOR_HOST']} did not answer "
        f"within {WINDOW} s (connection refused): {HINT}"
    )
    record = _run_with_stopped("gcs", sentence, env, emulators)
    run_id = str(record.flow_run.id)
    with environment(env) as settings:
        assert object_names(settings) == set()
        assert all(f"- **{table}**: {sentence}" in _summary(record) for table in TABLES)
        # BigQuery answers: each table's row names the same sentence.
        rows = query(
            settings,
            f"SELECT table_name, status, error FROM "
            f"{settings.quoted_table_ref('ph_sync_runs')} "
            f"WHERE flow_run_id = '{run_id}' ORDER BY table_name",
        )
    assert rows == [
        {"table_name": table, "status": "Failed", "error": f"{table}: {sentence}"}
        for table in sorted(TABLES)
    ]


def test_verbose_keeps_the_library_s_text_above_the_same_last_line(
    source: Source, emulators: PrivateEmulators
) -> None:
    env = _target(source, emulators, "bqverbose")
    emulators.stop("bigquery")
    try:
        code, _, lines = _command(env, "--verbose")
    finally:
        emulators.start("bigquery")
    assert code == 1
    assert lines[-1].startswith("partyhelp sync: FAILED: BigQuery at ")
    assert lines[-2].startswith(
        "partyhelp sync: the library said: RetryError: Timeout of "
        f"{WINDOW:.1f}s exceeded, last exception: "
    ), lines[-2]
    assert "Connection refused" in lines[-2]


def _refused_login(source: Source, setting: str) -> str:
    return (
        rf"cannot connect to MySQL at \S+ as {source.user}: error 1045: Access denied "
        rf"for user '{source.user}'@'[^']+' \(using password: YES\); the password of "
        rf"{source.user} was read from {re.escape(setting)}: put the user's right "
        rf"password there \(or let {source.user} connect from this host\)"
    )


def test_a_wrong_mysql_password_names_the_user_and_the_setting(
    source: Source, emulators: PrivateEmulators
) -> None:
    wrong = "wrong-" + secrets.token_hex(8)
    env = {**_target(source, emulators, "pwenv"), "PARTYHELP_MYSQL_PASSWORD": wrong}
    code, _, lines = _command(env)
    state, record = _flow_run(env)

    line = _refused_login(source, "PARTYHELP_MYSQL_PASSWORD")
    assert code == 1 and re.fullmatch(f"partyhelp sync: FAILED: {line}", lines[-1]), lines[-1]
    assert re.fullmatch(
        f"Flow run encountered an exception: SourceUnavailableError: {line}", state.message
    ), state.message
    assert _task(record, "check-source-schema").run_count == 1  # a retry would not heal it
    with environment(env) as settings:
        rows = query(
            settings,
            f"SELECT error FROM {settings.quoted_table_ref('ph_sync_runs')}"
            f" WHERE flow_run_id = '{record.flow_run.id}'",
        )
    assert len(rows) == len(TABLES) and all(
        re.fullmatch(f"ph_[a-z_]+: {line}", r["error"]) for r in rows
    )
    seen = [
        *lines,
        state.message,
        _summary(record),
        *record.messages(),
        *(r["error"] for r in rows),
    ]
    assert not [text for text in seen if wrong in text or READER_PASSWORD in text]


def test_a_wrong_mysql_password_from_a_secret_block_names_the_block(
    source: Source, emulators: PrivateEmulators
) -> None:
    from prefect.blocks.system import Secret

    wrong, block = "wrong-" + secrets.token_hex(8), f"ph-outage-{secrets.token_hex(4)}"
    Secret(value=wrong).save(block)
    env = {**_target(source, emulators, "pwblock"), "PARTYHELP_MYSQL_PASSWORD_BLOCK": block}
    try:
        state, record = _flow_run(env)
    finally:
        Secret.delete(block)

    line = _refused_login(source, f"the Secret block '{block}' (PARTYHELP_MYSQL_PASSWORD_BLOCK)")
    assert re.fullmatch(
        f"Flow run encountered an exception: SourceUnavailableError: {line}", state.message
    ), state.message
    assert wrong not in state.message and wrong not in _summary(record)
