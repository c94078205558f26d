"""Faults injected for real while the real flow runs; each test asserts the outcome.

- a MySQL connection KILLed from a second session while a chunk streams,
- MySQL down at start (a closed port),
- fake-gcs-server stopped while parts upload, then started again: within the storage
  client's retries, and for longer, so that the attempt fails and Prefect's retry heals it,
- the BigQuery emulator stopped during a run, then a part corrupted in GCS before the
  retry (which exports that table again),
- the same date synced twice,
- the flow's process SIGKILLed mid-run,
- reconciliation mismatches: in BigQuery, produced by a part really replaced in GCS after
  its check; per chunk, checked directly (no real fault is left that reaches it).

GCS and BigQuery are a private pair of emulators (``PrivateEmulators``) that these tests
stop and start with ``scripts/stack.sh``; the shared stack is never touched. Data is
small; the one large table (``lead_matches``: 150,000 extra rows, wide) only makes a stream
outlast the socket buffers, so that it can be interrupted: every wait is for an observable
event (a part object in the bucket, a connection in PROCESSLIST), never for a length of
time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import glob
import io
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import fastavro
import pytest

from flows.partyhelp_sync import ARTIFACT_KEY, partyhelp_bigquery_sync
from partyhelp_pipeline import export, parts
from partyhelp_pipeline import manifest as mf
from partyhelp_pipeline.clients import bigquery_client, storage_client
from partyhelp_pipeline.errors import LoadError, ReconciliationError
from partyhelp_pipeline.export_target import ExportTarget
from partyhelp_pipeline.settings import load_settings
from partyhelp_pipeline.source import snapshot, stream_rows
from partyhelp_pipeline.spec import SALES_BILLING_SUMMARY, TABLES
from partyhelp_pipeline.spec.sql import flattening_query
from partyhelp_pipeline.warehouse.replace import replace_table
from partyhelp_pipeline.warehouse.target import open_warehouse
from tasks.options import RETRIES
from tests.conftest import ROOT, admin_connection
from tests.faultkit import (
    PrivateEmulators,
    Source,
    assert_table_equals_source,
    assert_totals_equal_source,
    bq_totals,
    clock_at,
    env_vars,
    flow_run_record,
    free_port,
    manifests,
    new_target,
    object_names,
    outage_after_the_preflight,
    query,
    retry_flow_run,
    source_database,
    sync_on,
    table_states,
    with_corrupt_first_part,
)
from tests.oracle import bigquery_rows, diff_tables, expected_tables

pytestmark = pytest.mark.usefixtures("stack", "emulators")  # emulators: conftest.py

TWO_TABLES = ["ph_venues", "ph_lead_purchases"]
# Streaming the big table: one chunk, small batches (a stream that lasts), small parts (the
# first one exists early). Its rows are wide (venue names of 251 characters): the result,
# about 55 MB, is larger than the socket buffers can hold (on Linux at most ~36 MB: 32 MB
# to receive, 4 MB to send), so the server is still sending while the client reads.
BIG = {
    "PARTYHELP_BATCH_ROWS": "50",
    "PARTYHELP_PART_MAX_BYTES": "65536",
    "PARTYHELP_CHUNK_ROWS": "1000000",
}
BASELINE_DAY = dt.date(2026, 11, 20)
EXTRA_MATCHES = 150_000


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def source(stack: None) -> Iterator[Source]:
    """Synthetic data with dense ids, plus 150,000 extra lead matches of wide rows."""
    with source_database("ph_flt", scale=0.01, seed=11, edge_cases=False) as src:
        src.sql(
            "INSERT INTO lead_matches (lead_id, venue_id, match_score, status, notified_at, "
            "viewed_at, purchased_at, created_at, updated_at) "
            "SELECT 1 + seq % 12, 1 + seq % 6, (seq % 10000) / 100, "
            "ELT(1 + seq % 5, 'notified', 'viewed', 'purchased', 'expired', 'declined'), "
            "FROM_UNIXTIME(1700000000 + seq), IF(seq % 3 = 0, NULL, "
            "FROM_UNIXTIME(1700000600 + seq)), NULL, FROM_UNIXTIME(1700000000 + seq), "
            f"FROM_UNIXTIME(1700000000 + seq) FROM seq_1_to_{EXTRA_MATCHES}"
        )
        src.sql(
            "UPDATE venues SET business_name = "
            "CONCAT(LEFT(business_name, 40), ' ', REPEAT('~', 210))"
        )
        yield src


def _target(
    source: Source, emulators: PrivateEmulators, label: str, **overrides: str
) -> dict[str, str]:
    """Variables for a sync into a new bucket and dataset on the private emulators."""
    with env_vars(emulators.client_env):  # the bucket is created on the private GCS
        env = new_target(source, label, **overrides)
    return {**env, **emulators.client_env, "PARTYHELP_BQ_RETRY_SECONDS": "2"}


def _use(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Any:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return load_settings()


@pytest.fixture(scope="module")
def published(source: Source, emulators: PrivateEmulators) -> dict[str, str]:
    """A dataset holding two synced tables and the billing view: the 'previous' tables."""
    env = _target(source, emulators, "pub")
    with pytest.MonkeyPatch.context() as monkeypatch:
        _use(monkeypatch, env)
        state = sync_on(BASELINE_DAY, tables=TWO_TABLES)
    assert state.is_completed(), state.message
    return env


def _run(day: dt.date, tables: list[str]) -> Any:
    return sync_on(day, tables=tables)


def _command(day: dt.date) -> list[str]:
    """The command a person types to sync ``ph_lead_matches`` on ``day``."""
    return [
        sys.executable,
        "-m",
        "flows.partyhelp_sync",
        "--date",
        day.isoformat(),
        "--tables",
        "ph_lead_matches",
    ]


def _equals_source(settings: Any, source: Source, table: str, day: dt.date) -> None:
    """The BigQuery table equals the source: every row, every cell, every money sum."""
    assert_table_equals_source(settings, source, table, day)
    assert_totals_equal_source(settings, source, table)


def _matches_equal_source(settings: Any, source: Source, day: dt.date) -> None:
    """ph_lead_matches (150,000 wide rows) equals the source: the exact set of ids, each
    once; every cell of a sample of 150 rows; and per-column aggregates of all rows."""
    ref = settings.quoted_table_ref("ph_lead_matches")
    ids = [r["lead_match_id"] for r in query(settings, f"SELECT lead_match_id FROM {ref}")]
    assert len(ids) == len(set(ids))  # no duplicate
    assert set(ids) == {row[0] for row in source.sql("SELECT id FROM lead_matches")}
    with admin_connection(source.database) as connection:
        expected = expected_tables(connection, day)["ph_lead_matches"]
    sample = {k: v for k, v in expected.items() if k % 1000 == 7}
    actual = {
        r["lead_match_id"]: r
        for r in query(settings, f"SELECT * FROM {ref} WHERE MOD(lead_match_id, 1000) = 7")
    }
    assert len(sample) >= 150 and diff_tables(sample, actual) == []
    aggregates = (
        "SUM(lead_id), SUM(venue_id), COUNT(venue_business_name), "
        "SUM(LENGTH(venue_business_name)), COUNT(notified_at), COUNT(viewed_at), "
        "COUNT(purchased_at), ROUND(SUM(match_score), 2)"
    )
    bq = list(query(settings, f"SELECT {aggregates} FROM {ref}")[0].values())
    in_mysql = aggregates.replace("venue_business_name", "v.business_name").replace(
        "LENGTH", "CHAR_LENGTH"
    )
    mysql = source.sql(
        f"SELECT {in_mysql} FROM lead_matches LEFT JOIN venues AS v ON v.id = venue_id"
    )[0]
    assert [float(x) for x in bq] == [float(x) for x in mysql]


def _view_answers(settings: Any) -> dict[str, Any]:
    return query(
        settings,
        f"SELECT COUNT(*) AS n, SUM(amount_paid) AS s FROM "
        f"{settings.quoted_table_ref(SALES_BILLING_SUMMARY.name)}",
    )[0]


def _part_tokens(part_uris: list[str] | set[str]) -> set[str]:
    """The attempt tokens in part names (``part-CCCC-SSSS-TOKEN.avro``)."""
    return {re.search(r"part-\d{4}-\d{4}-(\w+)\.avro$", uri).group(1) for uri in part_uris}


def _first_part_appears(
    settings: Any, folder: str, stop: threading.Event, timeout: float = 240
) -> bool:
    """Wait until an Avro part exists under ``folder``: the export is streaming."""
    client = storage_client(settings)
    deadline = time.monotonic() + timeout
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            if any(
                b.name.endswith(".avro")
                for b in client.list_blobs(settings.gcs_bucket, prefix=folder)
            ):
                return True
        except Exception:  # GCS briefly unreachable: keep looking
            pass
        time.sleep(0.02)
    return False


@contextmanager
def _alongside(
    fault: Callable[[], None], stop: threading.Event, emulators: PrivateEmulators | None = None
) -> Iterator[None]:
    """Run ``fault`` in a thread while the block runs the sync; then tell it to stop, wait
    for it and, given the emulators, start GCS again if it is still down."""
    thread = threading.Thread(target=fault)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        if emulators is not None and not emulators.is_up("gcs"):
            emulators.start("gcs")


def _listed_parts_are_whole(settings: Any, manifest: mf.Manifest) -> None:
    """Every part the manifest lists has its size and CRC32C, and is a whole Avro file of
    the rows the manifest says."""
    client = storage_client(settings)
    mf.verify_parts(client, manifest)
    for part in manifest.parts:
        bucket, name = mf.split_gs_uri(part.uri)
        records = list(
            fastavro.reader(io.BytesIO(client.bucket(bucket).blob(name).download_as_bytes()))
        )
        assert len(records) == part.rows


# ---------------------------------------------------------------- 1. MySQL connection killed


def _kill_reader_mid_stream(
    source: Source,
    settings: Any,
    folder: str,
    killed: list[dict[str, Any]],
    stop: threading.Event,
    what: str = "CONNECTION",
) -> None:
    """Once a part of the export exists, KILL a reader connection (or only its query)
    still streaming rows."""
    if not _first_part_appears(settings, folder, stop):
        return
    with admin_connection() as connection, connection.cursor() as cursor:
        while not stop.is_set() and not killed:
            cursor.execute(
                "SELECT ID, INFO FROM information_schema.PROCESSLIST WHERE USER = %s "
                "AND COMMAND = 'Query' AND INFO LIKE %s",
                (source.user, "%AS `lead_match_id`%"),
            )
            rows = cursor.fetchall()
            if rows:
                connection_id, _info = rows[0]
                cursor.execute(f"KILL {what} {int(connection_id)}")
                killed.append({"id": connection_id})
            time.sleep(0.005)


@pytest.mark.parametrize(
    ("what", "day"), [("CONNECTION", dt.date(2026, 11, 21)), ("QUERY", dt.date(2026, 11, 29))]
)
def test_connection_killed_mid_stream_is_retried_and_nothing_is_lost_or_doubled(
    source: Source,
    emulators: PrivateEmulators,
    monkeypatch: pytest.MonkeyPatch,
    what: str,
    day: dt.date,
) -> None:
    """KILL CONNECTION (the stream is lost) or KILL QUERY (MySQL error 1317, as a DBA or a
    long-query killer does) while the chunk streams."""
    settings = _use(monkeypatch, _target(source, emulators, f"kill{what[0].lower()}", **BIG))
    folder = mf.table_folder(settings.gcs_prefix, day, "ph_lead_matches") + "/"
    killed: list[dict[str, Any]] = []
    stop = threading.Event()
    with _alongside(
        partial(_kill_reader_mid_stream, source, settings, folder, killed, stop, what), stop
    ):
        state = _run(day, ["ph_lead_matches"])
    assert killed, "no reader connection was streaming once the first part existed"
    assert state.is_completed(), state.message

    # The export task failed on the lost connection and ran again, once.
    record = flow_run_record(state.state_details.flow_run_id)
    assert record.task("export-ph_lead_matches").run_count == 2
    assert any("ph_lead_matches: MySQL error" in m for m in record.messages())

    # The killed attempt had uploaded parts: they stay in the folder, never listed; the
    # manifest lists the second attempt's parts only.
    (manifest,) = manifests(settings, day, "ph_lead_matches")
    listed = {p.uri for p in manifest.parts}
    stored = {
        mf.gs_uri(settings.gcs_bucket, n)
        for n in object_names(settings, folder)
        if n.endswith(".avro")
    }
    assert len(_part_tokens(listed)) == 1 and len(_part_tokens(stored)) == 2
    assert listed < stored
    mf.verify_parts(storage_client(settings), manifest)
    assert (
        manifest.rows
        == sum(p.rows for p in manifest.parts)
        == source.scalar("SELECT COUNT(*) FROM lead_matches")
    )
    _matches_equal_source(settings, source, day)


# ---------------------------------------------------------------- 2. MySQL down at start


@pytest.mark.parametrize(("limit", "value"), [("net_write_timeout", 1), ("max_statement_time", 1)])
def test_a_reader_that_pauses_longer_than_a_server_limit_keeps_its_stream(
    source: Source,
    emulators: PrivateEmulators,
    monkeypatch: pytest.MonkeyPatch,
    limit: str,
    value: int,
) -> None:
    """A server drops a stream whose client stops reading for ``net_write_timeout`` (60 s by
    default) and interrupts a statement that runs longer than ``max_statement_time`` (off by
    default; a DBA may set one). Here the server's default is made 1 s for new sessions,
    and the reader pauses for 4 s mid-stream: it still reads every row."""
    settings = _use(monkeypatch, _target(source, emulators, "pause"))
    spec = TABLES["ph_lead_matches"]
    expected = source.scalar("SELECT COUNT(*) FROM lead_matches")
    with admin_connection() as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT @@global.{limit}")
        (default,) = cursor.fetchone()
        cursor.execute(f"SET GLOBAL {limit} = %s", (value,))
    try:
        rows = 0
        with snapshot(settings.mysql) as connection:
            for number, (_, batch) in enumerate(
                stream_rows(
                    connection,
                    settings.mysql.driver,
                    flattening_query(spec),
                    {"first_id": 0, "last_id": 2**62, "include_pii": 0},
                    2000,
                )
            ):
                rows += len(batch)
                if number == 0:
                    time.sleep(4)  # the fault: a reader that does not read
    finally:
        with admin_connection() as connection, connection.cursor() as cursor:
            cursor.execute(f"SET GLOBAL {limit} = %s", (default,))
    assert rows == expected


def test_mysql_down_at_start_retries_then_fails_clearly_and_touches_nothing(
    published: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _use(monkeypatch, published)
    before_tables, before_objects = table_states(settings), object_names(settings)
    assert {*TWO_TABLES, SALES_BILLING_SUMMARY.name} <= set(before_tables)
    port = free_port()
    monkeypatch.setenv("PARTYHELP_MYSQL_PORT", str(port))
    state = _run(dt.date(2026, 11, 22), TWO_TABLES)
    assert state.is_failed()
    user = published["PARTYHELP_MYSQL_USER"]
    assert re.search(
        rf"cannot connect to MySQL at 127\.0\.0\.1:{port} as {user}: "
        r"error 200[23]: Can't connect to (MySQL )?server",
        state.message,
    )
    record = flow_run_record(state.state_details.flow_run_id)
    check = [t for t in record.task_runs if t.name.startswith("check-source-schema")]
    assert len(check) == 1 and check[0].run_count == RETRIES + 1
    assert not [t for t in record.task_runs if t.name.startswith(("export-", "load-"))]
    assert table_states(settings) == before_tables
    assert object_names(settings) == before_objects


# ---------------------------------------------------------------- 3. GCS stopped mid-upload


def test_gcs_stopped_during_uploads_heals_and_lists_no_partial_part(
    source: Source, emulators: PrivateEmulators, monkeypatch: pytest.MonkeyPatch
) -> None:
    day = dt.date(2026, 11, 23)
    settings = _use(monkeypatch, _target(source, emulators, "gcs", **BIG))
    folder = mf.table_folder(settings.gcs_prefix, day, "ph_lead_matches") + "/"
    outage: dict[str, Any] = {}
    stop = threading.Event()

    def stop_gcs_mid_upload() -> None:
        if not _first_part_appears(settings, folder, stop):
            return
        emulators.stop("gcs")  # for real: the process group is signalled and gone
        outage["down"] = not emulators.is_up("gcs")
        emulators.start("gcs")
        outage["up_again"] = emulators.is_up("gcs")
        outage["ended_at"] = dt.datetime.now(dt.UTC)

    with _alongside(stop_gcs_mid_upload, stop, emulators):
        state = _run(day, ["ph_lead_matches"])
    assert outage.pop("down") and outage.pop("up_again")
    assert state.is_completed(), state.message

    (manifest,) = manifests(settings, day, "ph_lead_matches")
    # The export was still uploading when GCS went down: it committed only after GCS was
    # back (the storage client's own retries, up to 120 s, healed the requests that failed;
    # an outage longer than that fails the attempt and the task retries: the next test).
    assert (
        dt.datetime.fromisoformat(manifest.completed_at.replace("Z", "+00:00")) > outage["ended_at"]
    )
    _listed_parts_are_whole(settings, manifest)
    assert manifest.rows == source.scalar("SELECT COUNT(*) FROM lead_matches")
    _matches_equal_source(settings, source, day)


def _export_retry_scheduled(
    since: dt.datetime, name: str, stop: threading.Event, timeout: float = 240
) -> bool:
    """Wait until a task run called ``name``, started after ``since``, has failed an attempt
    and awaits its retry: its state history holds an AwaitingRetry."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        TaskRunFilter,
        TaskRunFilterName,
        TaskRunFilterStartTime,
    )

    async def scheduled() -> bool:
        async with get_client() as client:
            runs = await client.read_task_runs(
                task_run_filter=TaskRunFilter(
                    name=TaskRunFilterName(any_=[name]),
                    start_time=TaskRunFilterStartTime(after_=since),
                )
            )
            for run in runs:
                states = await client.read_task_run_states(run.id)
                if any(s.name == "AwaitingRetry" for s in states):
                    return True
            return False

    deadline = time.monotonic() + timeout
    while not stop.is_set() and time.monotonic() < deadline:
        if asyncio.run(scheduled()):
            return True
        time.sleep(0.2)
    return False


def test_a_gcs_outage_longer_than_the_client_retries_is_healed_by_the_task_retry(
    source: Source, emulators: PrivateEmulators, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GCS stays down until the export's attempt has failed (its uploads gave up after
    PARTYHELP_GCS_RETRY_SECONDS) and Prefect has scheduled the retry; the retry, a new
    attempt with parts of its own, completes, and only its whole parts are listed."""
    day = dt.date(2026, 11, 27)
    # A process of its own, so that the retry settings (read at import) are this test's.
    env = {
        **_target(source, emulators, "gcsretry", **BIG),
        "PARTYHELP_GCS_RETRY_SECONDS": "1",
        "PARTYHELP_TASK_RETRIES": "6",
        "PARTYHELP_RETRY_DELAY_SECONDS": "1",
    }
    settings = _use(monkeypatch, env)
    folder = mf.table_folder(settings.gcs_prefix, day, "ph_lead_matches") + "/"
    since = dt.datetime.now(dt.UTC)
    outage: dict[str, Any] = {}
    stop = threading.Event()

    def stop_gcs_until_the_retry_is_scheduled() -> None:
        if not _first_part_appears(settings, folder, stop):
            return
        emulators.stop("gcs")
        outage["down"] = not emulators.is_up("gcs")
        outage["retry_scheduled"] = _export_retry_scheduled(since, "export-ph_lead_matches", stop)
        emulators.start("gcs")

    with _alongside(stop_gcs_until_the_retry_is_scheduled, stop, emulators):
        completed = subprocess.run(
            _command(day),
            cwd=ROOT,
            env={**os.environ, **env, **clock_at(day)},
            capture_output=True,
            text=True,
            timeout=400,
        )
    assert outage == {"down": True, "retry_scheduled": True}, completed.stderr[-3000:]
    assert completed.returncode == 0, completed.stderr[-3000:]

    (manifest,) = manifests(settings, day, "ph_lead_matches")
    record = flow_run_record(manifest.flow_run_id)
    export_run = record.task("export-ph_lead_matches")
    assert export_run.state.is_completed() and export_run.run_count >= 2
    failures = [m for m in record.messages() if "Retry 1/6" in m]
    assert failures and "StorageUnavailableError" in failures[0], record.messages()
    assert f"upload of gs://{settings.gcs_bucket}/{folder}" in failures[0]
    assert "gave up after 1 s of retries: ConnectionError" in failures[0]

    listed = {mf.split_gs_uri(p.uri)[1] for p in manifest.parts}
    tokens = {name.rsplit("-", 1)[1] for name in listed}
    assert len(tokens) == 1  # one attempt's parts, none of the failed attempt's
    stored = {n for n in object_names(settings, folder) if n.endswith(".avro")}
    assert stored - listed  # the failed attempt's uploaded parts are kept, unlisted
    _listed_parts_are_whole(settings, manifest)
    assert manifest.rows == source.scalar("SELECT COUNT(*) FROM lead_matches")
    _matches_equal_source(settings, source, day)


class _FolderStore:
    """Keeps parts as files under ``root``, counting the uploads it was asked for."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.puts = 0

    def put(self, name: str, path: str, rows: int, chunk: int) -> mf.PartInfo:
        self.puts += 1
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)  # fails under a file, for real
        size, crc = os.path.getsize(path), mf.file_crc32c_base64(path)
        os.replace(path, target)
        return mf.PartInfo(str(target), rows, size, crc, chunk)


def test_only_the_part_folders_of_processes_that_are_gone_are_removed(tmp_path: Path) -> None:
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    gone = tmp_path / f"{parts.PART_FOLDER_PREFIX}{finished.stdout.strip()}-abc"
    alive = tmp_path / f"{parts.PART_FOLDER_PREFIX}{os.getpid()}-def"
    unrelated = [tmp_path / f"{parts.PART_FOLDER_PREFIX}notapid", tmp_path / "other-123-x"]
    for folder in (gone, alive, *unrelated):
        folder.mkdir()
        (folder / "part-0000.avro").write_bytes(b"Obj\x01")
    assert parts.remove_orphaned_part_folders(str(tmp_path)) == [str(gone)]
    assert not gone.exists() and alive.exists() and all(f.exists() for f in unrelated)


def test_a_failed_upload_stops_the_stream_instead_of_reading_the_rest_of_the_chunk(
    source: Source, emulators: PrivateEmulators, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = _use(monkeypatch, _target(source, emulators, "failfast", **BIG))
    target = ExportTarget.from_settings(settings)
    spec = TABLES["ph_lead_matches"]
    plan = export.plan_export(target, spec, dt.date(2026, 11, 28), "test-failfast")
    healthy = _FolderStore(tmp_path / "ok")
    whole = export.export_chunk(target, spec, plan, 0, store=healthy)
    assert len(whole.parts) == healthy.puts > 20

    (tmp_path / "not-a-folder").write_text("a file where the parts' folder should be")
    broken = _FolderStore(tmp_path / "not-a-folder")
    with pytest.raises(NotADirectoryError):
        export.export_chunk(target, spec, plan, 0, store=broken)
    # The first failure is seen at the next part's roll, with at most two uploads running.
    assert 1 <= broken.puts <= 4, broken.puts


# ---------------------------------------------------------------- 4. BigQuery fails


def test_bigquery_down_then_a_corrupt_part_keep_the_previous_tables_until_a_retry_heals(
    source: Source,
    published: dict[str, str],
    emulators: PrivateEmulators,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """1. BigQuery is stopped once the run's pre-flight has found it up (a BigQuery down
       from the start fails the pre-flight, before any export: tests/scenarios/test_outage.py): the
       exports complete, the loads fail, the run is Failed naming the tables.
    2. BigQuery is back: the previous tables are intact and the view answers.
    3. One ph_venues part is overwritten in GCS (corrupt), then the run is retried as the
       UI does: ph_lead_purchases loads from the kept export; ph_venues' load refuses the
       damaged export, naming its part, and the flow exports ph_venues again from MySQL
       into a new folder (the damaged one is kept) and loads that. The retry completes.
    """
    day = dt.date(2026, 11, 24)
    settings = _use(monkeypatch, published)
    before = table_states(settings)
    view_before = _view_answers(settings)

    try:  # BigQuery goes down after the pre-flight found it up, before the exports
        with outage_after_the_preflight(
            source.database,
            source.user,
            ["venues", "lead_purchases"],
            lambda: emulators.stop("bigquery"),
        ) as outage:
            first = _run(day, TWO_TABLES)
    finally:
        emulators.start("bigquery")
    assert outage == {"stopped": True}
    assert first.is_failed()
    for table in TWO_TABLES:
        assert f"{table}: " in first.message
    assert {t: s for t, s in table_states(settings).items() if t in before} == before
    assert _view_answers(settings) == view_before
    exports = {t: manifests(settings, day, t) for t in TWO_TABLES}
    assert all(len(found) == 1 for found in exports.values())  # exported, kept, not loaded
    assert query(
        settings, f"SELECT DISTINCT sync_date FROM {settings.quoted_table_ref('ph_venues')}"
    ) == [{"sync_date": BASELINE_DAY}]

    damaged = exports["ph_venues"][0]
    corrupt = damaged.parts[0]
    bucket, name = mf.split_gs_uri(corrupt.uri)
    blob = storage_client(settings).bucket(bucket).blob(name)
    data = blob.download_as_bytes()
    blob.upload_from_string(data[: len(data) // 2] + b"\x00" * (len(data) - len(data) // 2))

    run_id = first.state_details.flow_run_id
    retried = retry_flow_run(partyhelp_bigquery_sync, run_id)
    assert retried.state_details.flow_run_id == run_id
    assert retried.is_completed(), retried.message
    # Logs reach the API in batches, a moment after the run's state: wait for this one.
    record = flow_run_record(run_id, final_log="exporting ph_venues again")
    warning = [m for m in record.messages() if "exporting ph_venues again" in m]
    assert len(warning) == 1
    assert f"ph_venues: part {corrupt.uri} does not match" in warning[0]
    assert damaged.export_id in warning[0]
    # The retry reused the first attempt's exports; only ph_venues was exported again.
    reused = {
        t.name
        for t in record.task_runs
        if t.name.startswith("export-") and t.flow_run_run_count == 2 and t.state.name == "Cached"
    }
    assert reused == {f"export-{t}" for t in TWO_TABLES}
    redone = [
        t
        for t in record.task_runs
        if t.name == "export-ph_venues"
        and t.flow_run_run_count == 2
        and t.state.name == "Completed"
    ]
    assert len(redone) == 1
    (kept,) = manifests(settings, day, "ph_lead_purchases")
    assert kept.export_id == exports["ph_lead_purchases"][0].export_id
    venues_exports = manifests(settings, day, "ph_venues")
    assert len(venues_exports) == 2  # the damaged export is kept beside the new one
    fresh = next(m for m in venues_exports if m.export_id != damaged.export_id)
    assert fresh.replaces == damaged.export_id and fresh.flow_run_id == str(run_id)
    mf.verify_parts(storage_client(settings), fresh)
    for table in TWO_TABLES:
        _equals_source(settings, source, table, day)
    view = _view_answers(settings)
    assert view["n"] == source.scalar("SELECT COUNT(*) FROM lead_purchases")
    audit = query(
        settings,
        f"SELECT export_id FROM {settings.quoted_table_ref('ph_sync_runs')} "
        f"WHERE sync_date = '{day.isoformat()}' AND status = 'Completed' "
        "AND table_name = 'ph_venues'",
    )
    assert audit == [{"export_id": fresh.export_id}]
    summary = max(
        (a for a in record.artifacts if a.key == ARTIFACT_KEY),  # the retry's
        key=lambda artifact: artifact.created,
    )
    assert (
        f"- ph_venues: export {damaged.export_id} was damaged in GCS (kept as evidence); "
        f"exported again from MySQL as {fresh.export_id}"
    ) in summary.data


def test_a_load_of_a_corrupt_part_fails_in_bigquery_and_changes_nothing(
    published: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flow checks each part's CRC32C before loading (above); this is the step after
    that check, run directly: BigQuery itself is handed a corrupt Avro part."""
    settings = _use(monkeypatch, published)
    spec = TABLES["ph_venues"]
    (manifest,) = manifests(settings, BASELINE_DAY, "ph_venues")
    broken = with_corrupt_first_part(settings, manifest)
    before = table_states(settings)
    with pytest.raises(LoadError, match=r"^ph_venues: BigQuery load failed"):
        replace_table(open_warehouse(settings), spec, broken)
    after = table_states(settings)
    assert after == before  # the current tables and every history partition
    assert not [t for t in after if t.startswith("_staging_")]


# ---------------------------------------------------------------- 5. same date twice


def test_the_same_date_synced_twice_gives_identical_tables_and_two_kept_exports(
    source: Source, published: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    day = dt.date(2026, 11, 25)
    settings = _use(monkeypatch, published)
    contents, runs = [], []
    for _ in range(2):
        state = _run(day, TWO_TABLES)
        assert state.is_completed(), state.message
        runs.append(str(state.state_details.flow_run_id))
        contents.append(
            {
                t: bigquery_rows(
                    bigquery_client(settings), settings.table_ref(t), TABLES[t].primary_key
                )
                for t in TWO_TABLES
            }
        )
    assert contents[0] == contents[1]
    for table in TWO_TABLES:
        totals = bq_totals(settings, table)
        assert (
            totals["n"]
            == totals["k"]
            == source.scalar(f"SELECT COUNT(*) FROM {TABLES[table].source_table}")
        )
        kept = manifests(settings, day, table)
        assert len(kept) == 2
        assert len({m.export_id for m in kept}) == 2
        assert [m.flow_run_id for m in kept] == runs
        for manifest in kept:
            mf.verify_parts(storage_client(settings), manifest)
    audit = query(
        settings,
        f"SELECT table_name, flow_run_id, export_id FROM "
        f"{settings.quoted_table_ref('ph_sync_runs')} "
        f"WHERE sync_date = '{day.isoformat()}' AND status = 'Completed'",
    )
    for table in TWO_TABLES:
        rows = [r for r in audit if r["table_name"] == table]
        assert sorted(r["flow_run_id"] for r in rows) == sorted(runs)
        assert len({r["export_id"] for r in rows}) == 2


# ---------------------------------------------------------------- 6. SIGKILL mid-run


def test_a_sigkilled_run_is_followed_by_a_run_that_completes_correctly(
    source: Source, emulators: PrivateEmulators, monkeypatch: pytest.MonkeyPatch
) -> None:
    day = dt.date(2026, 11, 26)
    env = _target(source, emulators, "sigkill", **BIG)
    settings = _use(monkeypatch, env)
    folder = mf.table_folder(settings.gcs_prefix, day, "ph_lead_matches") + "/"
    process = subprocess.Popen(
        _command(day),
        cwd=ROOT,
        env={**os.environ, **env, **clock_at(day)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        streaming = _first_part_appears(settings, folder, threading.Event())
        manifest_before_kill = any(
            n.endswith(mf.MANIFEST_NAME) for n in object_names(settings, folder)
        )
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    assert streaming and not manifest_before_kill
    assert process.returncode == -signal.SIGKILL
    orphaned = {n for n in object_names(settings, folder) if n.endswith(".avro")}
    assert orphaned and not manifests(settings, day, "ph_lead_matches")
    killed_folders = glob.glob(
        os.path.join(tempfile.gettempdir(), f"{parts.PART_FOLDER_PREFIX}{process.pid}-*")
    )
    assert killed_folders  # the kill skipped the cleanup of its local part folder

    state = _run(day, ["ph_lead_matches"])
    assert state.is_completed(), state.message
    assert not any(os.path.exists(f) for f in killed_folders)  # removed by the next export
    (manifest,) = manifests(settings, day, "ph_lead_matches")
    listed = {mf.split_gs_uri(p.uri)[1] for p in manifest.parts}
    assert not listed & orphaned  # the killed run's parts stay unlisted
    assert manifest.flow_run_id == str(state.state_details.flow_run_id)
    _matches_equal_source(settings, source, day)


# ---------------------------------------------------------------- 7. reconciliation


def test_the_chunk_reconciliation_refuses_an_export_that_differs_from_the_source() -> None:
    """Each chunk's rows and money sums must equal the source aggregate of its snapshot.

    Called directly, because no real fault can make them differ any more: inside one
    REPEATABLE READ snapshot the aggregate and the stream read the same rows (no
    concurrent insert shows), and a migration mid-run is refused before the chunk reads
    (``tests/partyhelp_pipeline/test_drift.py``,
    ``test_a_migration_mid_run_fails_the_chunk_before_it_writes``); a
    DECIMAL(10,3) changed in between used to be caught only here (rounded cents). What is
    left is a defect of the exporter itself, which is what this check is for.
    """
    spec = TABLES["ph_credit_transactions"]
    good = export.ChunkResult(
        index=2,
        first_id=101,
        last_id=150,
        rows=50,
        parts=(),
        source_totals={"row_count": 50, "amount": 12345, "balance_after": -500},
        exported_totals={"amount": 12345, "balance_after": -500},
        quality={},
        started_at="",
        finished_at="",
        driver="mysqlclient",
    )
    export.check_chunk(spec, good)
    with pytest.raises(ReconciliationError) as failure:
        export.check_chunk(spec, dataclasses.replace(good, rows=49))
    assert str(failure.value) == (
        "ph_credit_transactions: chunk 2 (ids 101..150) exported 49 rows but the source counted 50"
    )
    with pytest.raises(ReconciliationError) as failure:
        export.check_chunk(
            spec,
            dataclasses.replace(good, exported_totals={"amount": 12346, "balance_after": -500}),
        )
    assert str(failure.value) == (
        "ph_credit_transactions: chunk 2 sum of amount is 123.46 in "
        "the export but 123.45 in the source"
    )
    assert failure.value.table == spec.name and failure.value.column == "amount"


def _swapped_part(settings: Any, manifest: mf.Manifest, change: Any) -> mf.Manifest:
    """A copy of ``manifest`` whose first part is a valid Avro file with ``change`` applied
    to its records: a part that differs from what was verified, as a part replaced between
    the flow's CRC32C check and the load would."""
    client = storage_client(settings)
    bucket, name = mf.split_gs_uri(manifest.parts[0].uri)
    reader = fastavro.reader(io.BytesIO(client.bucket(bucket).blob(name).download_as_bytes()))
    schema, records = reader.writer_schema, change(list(reader))
    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema(schema), records, codec="deflate")
    swapped = f"{name.rsplit('/', 1)[0]}/swapped-{len(records)}.avro"
    client.bucket(bucket).blob(swapped).upload_from_string(out.getvalue())
    copy = mf.Manifest.from_json(manifest.to_json(), uri=manifest.uri)
    copy.parts[0] = dataclasses.replace(copy.parts[0], uri=mf.gs_uri(bucket, swapped))
    return copy


def test_bigquery_reconciliation_refuses_a_table_that_differs_from_the_source(
    published: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the load, BigQuery's count and money sums must equal the source's (kept in the
    manifest). The parts a manifest lists are checked by CRC32C before the load, so what is
    left to catch is a part changed after that check: here a part really replaced in GCS
    by a valid Avro file missing a row, then one with a balance a cent higher. Each load
    succeeds in BigQuery, the reconciliation refuses it naming the table and both figures,
    and the published table is not replaced."""
    settings = _use(monkeypatch, published)
    spec = TABLES["ph_venues"]
    (manifest,) = manifests(settings, BASELINE_DAY, "ph_venues")
    rows, balance = manifest.source_totals["row_count"], manifest.source_totals["credit_balance"]
    before = table_states(settings)

    one_row_fewer = _swapped_part(settings, manifest, lambda records: records[:-1])
    with pytest.raises(ReconciliationError) as failure:
        replace_table(open_warehouse(settings), spec, one_row_fewer)
    assert str(failure.value) == (
        f"ph_venues: rows differ between BigQuery and the source: {rows - 1} vs {rows}"
    )

    def one_cent_more(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        records[0]["credit_balance"] += Decimal("0.01")
        return records

    richer = _swapped_part(settings, manifest, one_cent_more)
    with pytest.raises(ReconciliationError) as failure:
        replace_table(open_warehouse(settings), spec, richer)
    assert str(failure.value) == (
        f"ph_venues: credit_balance differ between BigQuery and the source: "
        f"{Decimal(balance + 1).scaleb(-2)} vs {Decimal(balance).scaleb(-2)}"
    )
    after = table_states(settings)
    assert after == before  # the current tables and every history partition
    assert not [t for t in after if t.startswith("_staging_")]
