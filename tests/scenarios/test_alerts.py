"""A person hears about a failed or missing run, and runs do not overlap (issue 10, parts 1, 3).

On a Prefect server of this module's own (automations and concurrency limits are server-wide,
and these carry their production names), with `prefect deploy --all` from prefect.yaml,
`python -m scripts.setup --notify-block NAME` creating the automations of automations.yaml,
and a custom-webhook notification block pointed at an HTTP receiver this module runs:

- a command-line run with a wrong MySQL password ends Failed, and one whose source table
  is locked ends TimedOut: the receiver gets a notification for each, naming the cause;
- a run of `partyhelp-bigquery-sync/daily` that no worker takes: the receiver gets the
  "not Completed" notification once the window (15 s here, 4 h by default) has passed;
- two runs of the deployment: the second waits (AwaitingConcurrencySlot) until the first
  has finished, on a real process worker;
- two publishes of one table at once: the second starts when the first has ended; and,
  once tasks/gcs_to_bigquery.py holds tasks.locks.publish_lock, two command-line runs of
  one day publish each table in turn (skipped until then).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import logging
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.alerting import NotificationReceiver, private_prefect_server, using_prefect_server
from tests.conftest import ROOT, admin_connection
from tests.faultkit import clock_at
from tests.scenarios.test_deployment import (
    FLOW_NAME,
    POOLS,
    RunWatcher,
    deploy_without_docker,
    prefect_cli,
    process_worker,
    production_settings_in_prefect,
    wait_for,
)

pytestmark = pytest.mark.slow

NOTIFY_BLOCK = "partyhelp-alerts-test"
WINDOW_SECONDS = 15
FAILED_ALERT, MISSING_ALERT = "partyhelp-sync-run-failed", "partyhelp-sync-daily-not-completed"
ANOMALY_ALERT = "partyhelp-sync-anomaly"  # its notification: tests/scripts/test_setup.py
SYNC_DATE = "2026-11-26"


@pytest.fixture(scope="module")
def server(stack: None) -> Iterator[str]:
    """This module's Prefect server, used by everything below (and the processes it starts).

    Two service settings are shortened to keep the tests short: a run is marked Late 5 s
    after its start (default 15 s), and a run refused a deployment concurrency slot is tried
    again after 2 s (default 30 s).
    """
    with (
        private_prefect_server(
            PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS="5",
            PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS="2",
        ) as url,
        using_prefect_server(url),
    ):
        yield url


@pytest.fixture(scope="module")
def receiver() -> Iterator[NotificationReceiver]:
    receiver = NotificationReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def deployments(server: str, receiver: NotificationReceiver) -> dict[str, Any]:
    """Both work pools, `prefect deploy --all`, and the notification block the operator made:
    a custom webhook posting ``{"subject": ..., "body": ...}`` to the receiver."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.utilities.asyncutils import run_coro_as_sync
    from prefect.workers.utilities import get_default_base_job_template_for_infrastructure_type

    CustomWebhookNotificationBlock(
        name="partyhelp alerts (test receiver)",
        url=receiver.url,
        method="POST",
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
    ).save(NOTIFY_BLOCK)
    with get_client(sync_client=True) as client:  # `prefect work-pool create`, in-process
        for pool, pool_type in POOLS.items():
            template = run_coro_as_sync(
                get_default_base_job_template_for_infrastructure_type(pool_type)
            )
            client.create_work_pool(
                WorkPoolCreate(name=pool, type=pool_type, base_job_template=template or {})
            )
    production_settings_in_prefect()  # the settings Variable the image deployments check
    deploy_without_docker(
        "--all",
        folder=Path(tempfile.mkdtemp()),
        env={k: v for k, v in os.environ.items() if not k.startswith("PARTYHELP_")},
    )
    with get_client(sync_client=True) as client:
        return {
            name: client.read_deployment_by_name(f"{FLOW_NAME}/{name}")
            for name in ("daily", "daily-local")
        }


def run_setup(*extra: str) -> list[str]:
    """`python -m scripts.setup EXTRA`, without the Secret and GcsBucket blocks (its GCP steps
    run on the session's emulators, into a bucket and dataset of its own); returns its lines
    about automations."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARTYHELP_")}
    env.update(
        PARTYHELP_GCS_BUCKET="ph-alerts-setup",
        PARTYHELP_GCS_PREFIX="exports",
        PARTYHELP_BQ_PROJECT="partyhelp-test",
        PARTYHELP_BQ_DATASET="ph_alerts_setup",
        PARTYHELP_BQ_LOCATION="US",
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.setup",
            "--results-block",
            "",
            "--mysql-password-block",
            "",
            *extra,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    print(f"$ python -m scripts.setup {' '.join(extra)}\n{result.stdout}")
    return [line for line in result.stdout.splitlines() if line.startswith("Automation ")]


@pytest.fixture(scope="module")
def alerts(deployments: dict[str, Any]) -> list[str]:
    """The automations, as the operator creates them (with a 15 s window)."""
    return run_setup("--notify-block", NOTIFY_BLOCK, "--completed-within", f"{WINDOW_SECONDS}s")


def read_automation(name: str) -> Any:
    from prefect.automations import Automation

    return Automation.read(name=name)


def test_setup_creates_both_automations_then_a_rerun_changes_nothing(
    alerts: list[str], server: str
) -> None:
    from prefect.client.orchestration import get_client

    assert alerts == [
        f"Automation {FAILED_ALERT}: created",
        f"Automation {MISSING_ALERT}: created",
        f"Automation {ANOMALY_ALERT}: created",
    ]
    with get_client(sync_client=True) as client:
        block = client.read_block_document_by_name(NOTIFY_BLOCK, "custom-webhook")
    failed, missing = read_automation(FAILED_ALERT), read_automation(MISSING_ALERT)
    assert failed.trigger.expect == {
        "prefect.flow-run.Failed",
        "prefect.flow-run.Crashed",
        "prefect.flow-run.TimedOut",
    }
    assert failed.trigger.match_related.model_dump() == {
        "prefect.resource.role": "flow",
        "prefect.resource.name": FLOW_NAME,
    }
    assert (missing.trigger.posture.value, missing.trigger.within) == (
        "Proactive",
        dt.timedelta(seconds=WINDOW_SECONDS),
    )
    assert [spec.model_dump() for spec in missing.trigger.match_related] == [
        {"prefect.resource.role": "flow", "prefect.resource.name": FLOW_NAME},
        {"prefect.resource.role": "deployment", "prefect.resource.name": "daily"},
    ]
    for automation in (failed, missing):
        [action] = automation.actions
        assert action.block_document_id == block.id
        assert f"{server.removesuffix('/api')}/runs/flow-run/{{{{ flow_run.id }}}}" in action.body

    again = run_setup("--notify-block", NOTIFY_BLOCK, "--completed-within", f"{WINDOW_SECONDS}s")
    assert again == [
        f"Automation {FAILED_ALERT}: unchanged",
        f"Automation {MISSING_ALERT}: unchanged",
        f"Automation {ANOMALY_ALERT}: unchanged",
    ]

    # Paused for maintenance, then set up with another window: updated, and still paused.
    prefect_cli("automation", "pause", MISSING_ALERT)
    changed = run_setup("--notify-block", NOTIFY_BLOCK, "--completed-within", "20s")
    assert changed == [
        f"Automation {FAILED_ALERT}: unchanged",
        f"Automation {MISSING_ALERT}: updated (paused)",
        f"Automation {ANOMALY_ALERT}: unchanged",
    ]
    updated = read_automation(MISSING_ALERT)
    assert (updated.id, updated.enabled) == (missing.id, False)
    assert updated.trigger.within == dt.timedelta(seconds=20)
    assert "not Completed within 20 seconds" in updated.actions[0].subject
    prefect_cli("automation", "resume", MISSING_ALERT)
    run_setup("--notify-block", NOTIFY_BLOCK, "--completed-within", f"{WINDOW_SECONDS}s")
    restored = read_automation(MISSING_ALERT)
    assert restored.enabled and restored.trigger.within == dt.timedelta(seconds=15)


def test_setup_removes_a_second_automation_of_its_name(
    alerts: list[str], server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second `prefect automation create` of the same declaration would notify twice."""
    from prefect.automations import Automation
    from prefect.client.orchestration import get_client

    from scripts import setup

    original = read_automation(FAILED_ALERT)
    Automation(**original.model_dump(exclude={"id"})).create()
    capsys.readouterr()
    setup.setup_automations(
        NOTIFY_BLOCK, f"{FLOW_NAME}/daily", WINDOW_SECONDS, server.removesuffix("/api")
    )
    assert capsys.readouterr().out.splitlines() == [
        f"Automation {FAILED_ALERT}: unchanged, 1 duplicate(s) of that name deleted",
        f"Automation {MISSING_ALERT}: unchanged",
        f"Automation {ANOMALY_ALERT}: unchanged",
    ]
    with get_client(sync_client=True) as client:
        assert len(client.read_automations_by_name(FAILED_ALERT)) == 1


@contextlib.contextmanager
def locked_table(database: str, table: str) -> Iterator[None]:
    """``LOCK TABLES table WRITE`` in the source: every read of it waits until the end."""
    with admin_connection(database) as connection, connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLES `{table}` WRITE")
        try:
            yield
        finally:
            cursor.execute("UNLOCK TABLES")


def start_command(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """`python -m flows.partyhelp_sync ARGS` with ``env`` over this process's environment."""
    return subprocess.Popen(
        [sys.executable, "-m", "flows.partyhelp_sync", *args],
        cwd=ROOT,
        env={**os.environ, **clock_at(SYNC_DATE), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def command_run(parameters: dict[str, Any]) -> Any:
    """The one command-line (no deployment) flow run with these parameters."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        runs = [
            run
            for run in client.read_flow_runs(limit=200)
            if run.deployment_id is None
            and {k: run.parameters.get(k) for k in parameters} == parameters
        ]
    assert len(runs) == 1, runs
    return runs[0]


def body_lines(notification: dict[str, Any]) -> list[str]:
    print(f"--- received\nsubject: {notification['subject']}\n{notification['body']}")
    return str(notification["body"]).splitlines()


def test_failed_and_missing_runs_reach_the_receiver(
    alerts: list[str],
    deployments: dict[str, Any],
    receiver: NotificationReceiver,
    sync_env: dict[str, str],
    source_db: dict[str, Any],
    server: str,
) -> None:
    """A run of daily that no worker takes, and two command-line runs at the same time: a
    wrong MySQL password (Failed) and a source table held by a lock (TimedOut, after 5 s)."""
    from prefect.client.orchestration import get_client

    from partyhelp_pipeline.settings import load_settings
    from partyhelp_pipeline.warehouse.target import ensure_dataset, open_warehouse

    ensure_dataset(open_warehouse(load_settings()))  # as setup leaves it: the failures are MySQL's
    with get_client(sync_client=True) as client:
        missing = client.create_flow_run_from_deployment(deployments["daily"].id)
    wrong = start_command(
        {"PARTYHELP_MYSQL_PASSWORD": "not-the-password"},
        "--date",
        SYNC_DATE,
        "--tables",
        "ph_venues",
    )
    with locked_table(source_db["database"], "venues"):
        hung = start_command({"PARTYHELP_FLOW_TIMEOUT_SECONDS": "5"}, "--tables", "ph_venues")
        output, _ = wrong.communicate(timeout=180)
        assert wrong.returncode == 1, output
        assert "Access denied" in output, output
        timed_out = receiver.wait_for(
            "about a TimedOut run",
            lambda b: b["subject"].startswith("Partyhelp sync TimedOut: "),
            120,
        )
    hung_output, _ = hung.communicate(timeout=180)
    assert hung.returncode == 1, hung_output
    ui = server.removesuffix("/api")

    failed_run = command_run({"sync_date": SYNC_DATE})
    failed = receiver.wait_for(
        f"about {failed_run.name}", lambda b: failed_run.name in b["subject"], 60
    )
    assert failed["subject"] == f"Partyhelp sync Failed: {failed_run.name}"
    lines = body_lines(failed)
    assert lines[:5] == [
        f"Partyhelp sync run {failed_run.name} ended Failed.",
        f"Sync date: {SYNC_DATE}",
        "Mode: sync",
        "Tables: ph_venues",
        "Started by: the command line",
    ]
    assert re.fullmatch(
        r"Message: Flow run encountered an exception: SourceUnavailableError: "
        r"cannot connect to MySQL at \S+ as \w+: error 1045: Access denied "
        r"for user .*",
        lines[5],
    ), lines[5]
    assert lines[6] == f"Open: {ui}/runs/flow-run/{failed_run.id}"

    hung_run = command_run({"sync_date": None, "tables": ["ph_venues"]})
    lines = body_lines(timed_out)
    assert timed_out["subject"] == f"Partyhelp sync TimedOut: {hung_run.name}"
    assert lines[1].startswith("Sync date: not given: the day of ")
    assert re.fullmatch(r"Message: Flow run exceeded timeout of 5(\.0)? second\(s\)", lines[5]), (
        lines[5]
    )

    check_the_missing_run_alert(receiver, missing.id, ui)
    # One notification a run: none about the command-line runs but their failure (they
    # belong to no deployment), none about the missing run but its absence.
    for run in (failed_run, hung_run, missing):
        assert len([b for b in receiver.bodies() if run.name in b["subject"]]) == 1, run.name


def check_the_missing_run_alert(receiver: NotificationReceiver, run_id: Any, ui: str) -> None:
    """Late 5 s after its start (no worker polls partyhelp-docker), then 15 s without a
    Completed state: the proactive notification."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
    started = time.monotonic()
    notification = receiver.wait_for(f"about {run.name}", lambda b: run.name in b["subject"], 90)
    print(f"(received {time.monotonic() - started:.0f}s after the command runs ended)")
    assert notification["subject"] == (
        f"Partyhelp sync: {run.name} of {FLOW_NAME}/daily not "
        f"Completed within {WINDOW_SECONDS} seconds"
    )
    lines = body_lines(notification)
    assert re.fullmatch(
        rf"Partyhelp sync run {run.name} of {FLOW_NAME}/daily has not Completed within "
        rf"{WINDOW_SECONDS} seconds after it became Late at \S+ \S+ \(scheduled start .+\)\.",
        lines[0],
    ), lines[0]
    assert lines[1].startswith("Late: no worker of pool partyhelp-docker took it")
    assert lines[2].startswith("Sync date: not given: the day of ")
    assert lines[3:] == ["Mode: sync", f"Open: {ui}/runs/flow-run/{run.id}"]


# ------------------------------------------------------------------ one run at a time


def test_the_deployment_runs_one_flow_run_at_a_time(
    deployments: dict[str, Any], sync_env: dict[str, str], source_db: dict[str, Any], tmp_path: Path
) -> None:
    """Two runs of the deployment on a real process worker: while the first is Running (its
    source table held by a lock), the worker's attempt to start the second is refused by the
    server: AwaitingConcurrencySlot. It starts once the first has ended, and completes."""
    from prefect.client.orchestration import get_client

    deployment = deployments["daily-local"]
    assert deployment.global_concurrency_limit.limit == 1
    assert deployment.concurrency_options.collision_strategy.value == "ENQUEUE"
    queue = f"one-at-a-time-{secrets.token_hex(4)}"
    worker_env = {
        k: v for k, v in os.environ.items() if k != "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK"
    }
    worker_env["PREFECT_WORKER_QUERY_SECONDS"] = "1"
    with (
        get_client(sync_client=True) as client,
        process_worker(queue, worker_env, tmp_path / "worker.log"),
    ):

        def start() -> Any:
            return client.create_flow_run_from_deployment(
                deployment.id, parameters={"tables": ["ph_venues"]}, work_queue_name=queue
            )

        def refused(run: Any) -> bool:
            return "AwaitingConcurrencySlot" in [
                s.name for s in client.read_flow_run_states(run.id)
            ]

        with locked_table(source_db["database"], "venues"):
            first = start()
            wait_for(
                "the first run to be Running",
                lambda: client.read_flow_run(first.id).state.is_running(),
                120,
            )
            second = start()
            wait_for("the second run to be refused a slot", lambda: refused(second), 60)
            assert client.read_flow_run(first.id).state.is_running()
            assert client.read_flow_run(second.id).state.name == "AwaitingConcurrencySlot"
        first_run = RunWatcher(client, first.id).wait_final()
        second_run = RunWatcher(client, second.id).wait_final()
        history = [s.name for s in client.read_flow_run_states(second.id)]  # oldest first
    print(f"second run's states: {history}")
    log = (tmp_path / "worker.log").read_text()
    assert first_run.state.is_completed() and second_run.state.is_completed(), log[-5000:]
    assert second_run.start_time >= first_run.end_time
    # Refused a slot (AwaitingConcurrencySlot, tried again every 2 s) until the first ended.
    waited = max(i for i, name in enumerate(history) if name == "AwaitingConcurrencySlot")
    assert history[0] == "Scheduled" and waited < history.index("Pending")
    assert history[-2:] == ["Running", "Completed"]


def export_once(settings: Any, table: str, day: dt.date) -> Any:
    """A real, committed export of ``table`` for ``day`` (MySQL -> Avro parts in GCS)."""
    from partyhelp_pipeline import export
    from partyhelp_pipeline.export_target import ExportTarget
    from partyhelp_pipeline.spec import TABLES

    spec, target = TABLES[table], ExportTarget.from_settings(settings)
    plan = export.plan_export(target, spec, day, None)
    chunks = [export.export_chunk(target, spec, plan, i) for i in range(len(plan.chunks))]
    return export.commit_manifest(target, spec, plan, chunks)


def publish_events(limit_name: str) -> list[Any]:
    """The server's record of the publish limit: acquired and released events, in order."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(limit_name)
        page = client.read_events(
            EventFilter(
                event=EventNameFilter(
                    name=[f"prefect.concurrency-limit.{what}" for what in ("acquired", "released")]
                ),
                resource=EventResourceFilter(id=[f"prefect.concurrency-limit.{limit.id}"]),
            ),
            limit=50,
        )
    return sorted(page.events, key=lambda e: e.occurred)


def in_turn(limit_name: str) -> list[Any]:
    """Its four events (two publishes), once the server has them; checks they alternate."""
    events: list[Any] = wait_for(
        f"4 events of {limit_name}",
        lambda: len(found := publish_events(limit_name)) == 4 and found,
        30,
    )
    assert [e.event.rsplit(".", 1)[1] for e in events] == [
        "acquired",
        "released",
        "acquired",
        "released",
    ]
    return events


class RecordedLines(logging.Handler):
    """The messages of the records it handles (thread-safe: ``Handler.handle`` locks)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_two_publishes_of_one_table_never_interleave(
    server: str, sync_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Two publishes of ph_venues for one day at once, each in a real flow run of its own, as
    two command-line runs would start them, each of its own export: the second waits for the
    first's end, naming the first run, then publishes. A publish alone waits for nothing and
    says nothing of waiting (issue 19: a slow API is no other run)."""
    from prefect import flow
    from prefect.runtime import flow_run
    from prefect.variables import Variable

    from partyhelp_pipeline.settings import load_settings
    from partyhelp_pipeline.spec import TABLES
    from partyhelp_pipeline.warehouse.replace import replace_table
    from partyhelp_pipeline.warehouse.target import ensure_dataset, open_warehouse
    from tasks.locks import holder_variable_name, publish_limit_name, publish_lock

    caplog.set_level(logging.INFO, logger="partyhelp_sync")
    said = RecordedLines()  # the flow runs' loggers do not propagate to caplog
    logging.getLogger("prefect.flow_runs").addHandler(said)
    settings = load_settings()
    ensure_dataset(open_warehouse(settings))
    manifests = [
        export_once(settings, "ph_venues", dt.date.fromisoformat(SYNC_DATE)) for _ in range(2)
    ]
    entered, release = [threading.Event(), threading.Event()], threading.Event()
    spans: dict[int, tuple[float, float, Any]] = {}
    run_ids: dict[int, str] = {}

    @flow(name="partyhelp-publish-test", flow_run_name="publish-{index}")
    def publish(index: int) -> None:
        run_ids[index] = str(flow_run.get_id())
        with publish_lock(settings, "ph_venues"):
            begin = time.monotonic()
            entered[index].set()
            result = replace_table(open_warehouse(settings), TABLES["ph_venues"], manifests[index])
            release.wait(60)
            spans[index] = (begin, time.monotonic(), result)

    # Each thread in this context: its Prefect settings (this module's server) included.
    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(publish, i)) for i in range(2)
    ]
    threads[0].start()
    assert entered[0].wait(60)
    threads[1].start()
    assert not entered[1].wait(3), "the second publish started while the first held the table"
    release.set()
    for thread in threads:
        thread.join(120)
    (_, end0, result0), (begin1, _, result1) = spans[0], spans[1]
    assert begin1 >= end0, "the publishes overlapped"
    assert (result0.export_id, result1.export_id) == tuple(m.export_id for m in manifests)
    assert result1.rows_loaded == manifests[1].rows
    first = f"run 'publish-0' ({run_ids[0]})"
    logging.getLogger("prefect.flow_runs").removeHandler(said)
    waits = [
        line
        for line in said.lines
        if "ph_venues: " in line and ("waiting" in line or "waited" in line)
    ]
    print("\n".join(waits))
    assert len(waits) == 2, waits  # the second run only: one line as it waits, one after
    assert waits[0].startswith(f"ph_venues: {first} is publishing it; waiting for its end")
    assert re.fullmatch(
        rf"ph_venues: waited \d+s while {re.escape(first)} published it", waits[1]
    ), waits[1]
    limit = publish_limit_name(settings, "ph_venues")
    in_turn(limit)
    assert Variable.get(holder_variable_name(limit)) is None  # no holder named once free
    caplog.clear()
    with publish_lock(settings, "ph_venues"):  # alone: nothing to wait for, nothing said
        pass
    assert not [r for r in caplog.records if "ph_venues: " in r.getMessage()], caplog.text


LOCK_WIRED = "publish_lock(" in (ROOT / "tasks" / "gcs_to_bigquery.py").read_text()


@pytest.mark.skipif(
    not LOCK_WIRED,
    reason="tasks/gcs_to_bigquery.py::load_table does not "
    "hold tasks.locks.publish_lock around warehouse.replace_table yet",
)
def test_two_command_line_runs_of_one_day_publish_each_table_in_turn(
    server: str, sync_env: dict[str, str]
) -> None:
    """Two real command-line runs of one day, started together: both complete, and the
    server's record of each table's publish limit shows the two runs' publishes in turn."""
    from partyhelp_pipeline.settings import load_settings
    from tasks.locks import publish_limit_name

    tables = ("ph_venues", "ph_leads")
    runs = [start_command({}, "--date", SYNC_DATE, "--tables", ",".join(tables)) for _ in range(2)]
    for run in runs:
        output, _ = run.communicate(timeout=300)
        assert run.returncode == 0, output
    settings = load_settings()
    for table in tables:
        events = in_turn(publish_limit_name(settings, table))
        holders = [
            {r.id for r in e.related if r.id.startswith("prefect.flow-run.")} for e in events
        ]
        for event, holder in zip(events, holders, strict=True):
            print(f"{table}: {event.event} at {event.occurred} by {sorted(holder)}")
        assert holders[0] == holders[1] != holders[2] == holders[3], holders
