"""Helpers shared by the fault, bad-data, drift and security tests (no fixtures here).

Everything acts on the real stack: MariaDB databases of their own, buckets and datasets of
their own, and, for the tests that stop GCS or BigQuery, a private pair of emulators on
their own ports (``PrivateEmulators``), so that stopping them never disturbs anyone else
using the shared stack.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import io
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any, cast

import fastavro
from google.api_core import exceptions as gexc

from partyhelp_pipeline import manifest as mf
from partyhelp_pipeline.clients import bigquery_client, storage_client
from partyhelp_pipeline.settings import Settings
from partyhelp_pipeline.spec import AUDIT_TABLE, FRESHNESS_VIEW, HEALTH_VIEW, METRICS_TABLE
from tests.conftest import (
    MYSQL_ADMIN,
    admin_connection,
    create_bucket,
    create_reader,
    create_source_database,
    drop_database,
    drop_reader,
    sync_environment,
)
from tests.emulators import PrivateEmulators, env_vars, free_port, private_emulators

# Tables and views of what the runs did, not of the data: every run adds or replaces a row.
RUN_RECORDS = (AUDIT_TABLE.name, FRESHNESS_VIEW.name, METRICS_TABLE.name, HEALTH_VIEW.name)


@dataclass
class Source:
    """A source database of one test module, and its SELECT-only reader."""

    database: str
    user: str

    def sql(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run one statement as root (test setup only) and return its rows."""
        with admin_connection(self.database) as connection, connection.cursor() as cursor:
            cursor.execute("SET SESSION time_zone = '+00:00', sql_mode = ''")
            # Legacy rows break MariaDB's JSON CHECKs, which a table-copying ALTER would
            # re-run. MySQL has no such setting (its JSON columns hold no malformed rows).
            if server_is_mariadb():
                cursor.execute("SET SESSION check_constraint_checks = 0")
            cursor.execute(statement, params)
            return list(cursor.fetchall())

    def scalar(self, statement: str, params: Any = None) -> Any:
        """The first value of the first row."""
        return self.sql(statement, params)[0][0]


@cache
def server_is_mariadb() -> bool:
    """Whether the test server is MariaDB (else MySQL): asked once per session."""
    from scripts.synthetic.schema import is_mariadb

    with admin_connection() as connection:
        return is_mariadb(connection)


@contextmanager
def source_database(
    prefix: str, scale: float, seed: int, edge_cases: bool = True
) -> Iterator[Source]:
    """A synthetic source database with a reader user, dropped afterwards."""
    from scripts import synthetic

    database = create_source_database(prefix)
    user = ""
    try:
        synthetic.load(MYSQL_ADMIN, database, scale=scale, seed=seed, edge_cases=edge_cases)
        user = create_reader(database)
        yield Source(database, user)
    finally:
        if user:
            drop_reader(user)
        drop_database(database)


def new_target(source: Source, label: str, **overrides: str) -> dict[str, str]:
    """Sync variables for ``source`` into a new bucket and dataset (on the current emulators)."""
    token = secrets.token_hex(4)
    bucket, dataset = f"ph-{label}-{token}", f"ph_{label}_{token}"
    create_bucket(bucket)
    return sync_environment(source.database, source.user, bucket, dataset, **overrides)


@contextmanager
def environment(env: dict[str, str]) -> Iterator[Settings]:
    """``os.environ`` updated with ``env`` for the block (the flow reads it); its settings,
    read as the flow reads them (secrets from Prefect blocks when a ``*_BLOCK`` names one)."""
    from tasks.options import runtime_settings

    with env_vars(env):
        yield runtime_settings()


def clock_at(day: dt.date | str) -> dict[str, str]:
    """The test clock's variable: a sync from MySQL takes ``day`` as today."""
    return {"PARTYHELP_CLOCK_DATE": str(day)}


def sync_on(day: dt.date, **parameters: Any) -> Any:
    """A sync from MySQL on ``day`` (the test clock says it is today there): the flow's
    final state. The production path, with only today's date set by the test."""
    from flows.partyhelp_sync import partyhelp_bigquery_sync

    with env_vars(clock_at(day)):
        return partyhelp_bigquery_sync(sync_date=day, return_state=True, **parameters)


# ---------------------------------------------------------------- BigQuery and GCS


def table_states(settings: Settings) -> dict[str, tuple[int, str]]:
    """Every reporting table and view of the dataset: ``{name: (rows, digest of every row)}``.
    Not the run records (the audit table and its freshness view, the metrics table and its
    health view): every run adds or replaces a row there.

    Content, not ``modified``: the BigQuery emulator never updates a table's ``modified``
    (nor its etag) when a load or copy replaces it, so only the rows can show a change.
    Every row carries ``sync_date``, so a replacement by another day's run always shows.
    """
    client = bigquery_client(settings)
    dataset = f"{settings.bq_project}.{settings.bq_dataset}"
    try:
        items = list(client.list_tables(dataset))
    except gexc.NotFound:  # no dataset yet, so no tables
        return {}
    states = {}
    for item in items:
        if item.table_id in RUN_RECORDS:
            continue
        rows = sorted(
            json.dumps(dict(row.items()), default=str, sort_keys=True)
            for row in client.query(f"SELECT * FROM `{dataset}.{item.table_id}`").result()
        )
        states[item.table_id] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
    return states


def assert_table_equals_source(
    settings: Settings, source: Source, table: str, day: dt.date
) -> None:
    """The BigQuery table equals the source, row by row and cell by cell (tests/oracle.py)."""
    from partyhelp_pipeline.spec import TABLES
    from tests.oracle import bigquery_rows, diff_tables, expected_tables

    with admin_connection(source.database) as connection:
        expected = expected_tables(connection, day)[table]
    actual = bigquery_rows(
        bigquery_client(settings), settings.table_ref(table), TABLES[table].primary_key
    )
    assert len(actual) == len(expected) > 0
    assert diff_tables(expected, actual) == []


def query(settings: Settings, sql: str) -> list[dict[str, Any]]:
    """Rows of a BigQuery query as dicts."""
    return [dict(row.items()) for row in bigquery_client(settings).query(sql).result()]


def bq_totals(settings: Settings, table: str, money: tuple[str, ...] = ()) -> dict[str, Any]:
    """Row count, distinct primary keys and money sums of a loaded table."""
    from partyhelp_pipeline.spec import TABLES

    key = TABLES[table].primary_key
    sums = "".join(f", SUM(`{c}`) AS `{c}`" for c in money)
    row = query(
        settings,
        f"SELECT COUNT(*) AS n, COUNT(DISTINCT `{key}`) AS k{sums} "
        f"FROM {settings.quoted_table_ref(table)}",
    )[0]
    return {k: (Decimal(v) if k in money and v is not None else v) for k, v in row.items()}


def source_totals(source: Source, table: str, money: tuple[str, ...] = ()) -> dict[str, Any]:
    """The same figures from the source table."""
    sums = "".join(f", SUM(`{c}`)" for c in money)
    row = source.sql(f"SELECT COUNT(*), COUNT(DISTINCT id){sums} FROM `{table}`")[0]
    out = {"n": row[0], "k": row[1]}
    out.update(
        {c: (None if v is None else Decimal(v)) for c, v in zip(money, row[2:], strict=True)}
    )
    return out


def money_columns(table: str) -> tuple[str, ...]:
    """``table``'s money columns: NUMERIC in its spec, their sums match to the cent.
    ``tests/partyhelp_pipeline/spec/test_tables.py`` holds the specs to the contract's own
    list of them."""
    from partyhelp_pipeline.spec import TABLES

    return tuple(c.name for c in TABLES[table].money_columns)


def assert_totals_equal_source(settings: Settings, source: Source, table: str) -> dict[str, Any]:
    """Row count, distinct primary keys and every money sum of the loaded ``table`` equal
    its source table's; returns BigQuery's figures."""
    from partyhelp_pipeline.spec import TABLES

    money = money_columns(table)
    totals = bq_totals(settings, table, money)
    assert totals == source_totals(source, TABLES[table].source_table, money), table
    return totals


def bucket_objects(settings: Settings, prefix: str = "") -> dict[str, bytes]:
    """Every object of the bucket (under ``prefix``), downloaded: ``{name: bytes}``."""
    client = storage_client(settings)
    return {
        blob.name: blob.download_as_bytes()
        for blob in client.list_blobs(settings.gcs_bucket, prefix=prefix or None)
    }


def object_names(settings: Settings, prefix: str = "") -> set[str]:
    """Names of the bucket's objects (under ``prefix``)."""
    client = storage_client(settings)
    return {blob.name for blob in client.list_blobs(settings.gcs_bucket, prefix=prefix or None)}


def manifests(settings: Settings, day: dt.date, table: str) -> list[mf.Manifest]:
    """Every committed manifest of ``table`` for ``day``, oldest first."""
    client = storage_client(settings)
    folder = mf.table_folder(settings.gcs_prefix, day, table)
    found = [
        mf.read_manifest(client, mf.gs_uri(settings.gcs_bucket, name))
        for name in mf.manifest_names(client, settings.gcs_bucket, folder)
    ]
    return sorted(found, key=lambda m: m.extracted_at)


def with_corrupt_first_part(settings: Settings, manifest: mf.Manifest) -> mf.Manifest:
    """A copy of ``manifest`` whose first part is a corrupt copy of it, really written to
    GCS beside it (its last 40 bytes overwritten): a load that BigQuery itself refuses."""
    client = storage_client(settings)
    bucket, name = mf.split_gs_uri(manifest.parts[0].uri)
    copy = f"{name.rsplit('/', 1)[0]}/corrupt-copy.avro"
    data = client.bucket(bucket).blob(name).download_as_bytes()
    client.bucket(bucket).blob(copy).upload_from_string(data[:-40] + b"\xff" * 40)
    broken = mf.Manifest.from_json(manifest.to_json(), uri=manifest.uri)
    broken.parts[0] = dataclasses.replace(broken.parts[0], uri=mf.gs_uri(bucket, copy))
    return broken


def avro_records(data: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(writer schema, records) of one Avro container file."""
    reader = fastavro.reader(io.BytesIO(data))
    # fastavro types a record as any Avro value; a part's records are always mappings
    records = [cast(dict[str, Any], record) for record in reader]
    return cast(dict[str, Any], reader.writer_schema), records


def decoded_text(name: str, data: bytes) -> str:
    """An object as searchable text: Avro parts decoded (they are deflated), others as is."""
    if name.endswith(".avro"):
        schema, records = avro_records(data)
        return (
            json.dumps(schema, default=str)
            + "\n"
            + "\n".join(json.dumps(r, default=str, ensure_ascii=False) for r in records)
        )
    return data.decode("utf-8", errors="replace")


# ---------------------------------------------------------------- Prefect


@dataclass
class RunRecord:
    """What the Prefect API holds about one flow run."""

    flow_run: Any
    task_runs: list[Any]
    artifacts: list[Any]
    logs: list[Any]

    def task(self, name: str) -> Any:
        """The task run called ``name`` (exactly one)."""
        found = [t for t in self.task_runs if t.name == name]
        assert len(found) == 1, (name, sorted(t.name for t in self.task_runs))
        return found[0]

    def messages(self) -> list[str]:
        """Every log message of the run, flow and tasks."""
        return [log.message for log in self.logs]


def flow_run_record(
    flow_run_id: Any, *, final_log: str | None = None, wait_seconds: float = 30
) -> RunRecord:
    """The run, its task runs, artifacts and logs, waiting (for the logs and task states
    reach the API a little after the flow's state) until ``final_log`` appears, if given,
    and no task run is still pending or running."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.client.schemas.sorting import LogSort

    async def read() -> RunRecord:
        async with get_client() as client:
            run = await client.read_flow_run(flow_run_id)
            runs = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            tasks = await client.read_task_runs(flow_run_filter=runs)
            artifacts = await client.read_artifacts(flow_run_filter=runs)
            logs: list[Any] = []
            while True:
                page = await client.read_logs(
                    log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
                    limit=200,
                    offset=len(logs),
                    sort=LogSort.TIMESTAMP_ASC,
                )
                logs.extend(page)
                if len(page) < 200:
                    break
            return RunRecord(run, tasks, artifacts, logs)

    deadline = time.monotonic() + wait_seconds
    while True:
        record = asyncio.run(read())
        settled = all(t.state is not None and t.state.is_final() for t in record.task_runs)
        logged = final_log is None or any(final_log in m for m in record.messages())
        if (settled and logged) or time.monotonic() > deadline:
            return record
        time.sleep(0.5)


def retry_flow_run(flow: Any, flow_run_id: Any) -> Any:
    """Retry a finished flow run (same run id), in-process: the test process plays the
    worker with Prefect's own engine.

    Not the UI's request: the button sends ``set_state`` AwaitingRetry with
    ``force: false`` (tests/scenarios/test_deployment.py ``retry_like_the_ui``, on a
    deployment's run),
    and the server refuses that for a run of no deployment ("Cannot reschedule a run
    without an associated deployment"), as this one is: so here it is forced.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import State, StateType
    from prefect.flow_engine import run_flow

    async def reschedule() -> Any:
        async with get_client() as client:
            await client.set_flow_run_state(
                flow_run_id,
                State(type=StateType.SCHEDULED, name="AwaitingRetry", message="Retry from the UI"),
                force=True,
            )
            return await client.read_flow_run(flow_run_id)

    flow_run = asyncio.run(reschedule())
    return run_flow(flow, flow_run=flow_run, parameters=flow_run.parameters, return_type="state")


__all__ = ["PrivateEmulators", "env_vars", "free_port", "private_emulators"]


def _reader_waits_on_a_lock(user: str, stop: threading.Event, timeout: float) -> bool:
    """Wait until one of ``user``'s statements waits on a table lock."""
    deadline = time.monotonic() + timeout
    with admin_connection() as connection, connection.cursor() as cursor:
        while not stop.is_set() and time.monotonic() < deadline:
            cursor.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE "
                "USER = %s AND STATE LIKE 'Waiting for table metadata lock%%'",
                (user,),
            )
            if cursor.fetchone()[0]:
                return True
            time.sleep(0.02)
    return False


@contextmanager
def outage_after_the_preflight(
    database: str,
    user: str,
    tables: list[str],
    stop_service: Callable[[], None],
    timeout: float = 180,
) -> Iterator[dict[str, bool]]:
    """A service goes down after a run's pre-flight found it up, before its exports.

    The source ``tables`` are locked (a real ``LOCK TABLES ... WRITE``), so the run's export
    waits on them; the pre-flight, which asks GCS and BigQuery before MySQL is read, has
    passed by then. Once the reader waits, ``stop_service()`` runs and the tables are
    unlocked. The block runs the sync; ``outage["stopped"]`` says whether the stop happened.
    """
    outage: dict[str, bool] = {"stopped": False}
    stop = threading.Event()
    with admin_connection(database) as locker, locker.cursor() as lock:
        lock.execute("LOCK TABLES " + ", ".join(f"`{t}` WRITE" for t in tables))

        def stop_while_the_export_waits() -> None:
            try:
                if _reader_waits_on_a_lock(user, stop, timeout):
                    stop_service()
                    outage["stopped"] = True
            finally:
                lock.execute("UNLOCK TABLES")

        thread = threading.Thread(target=stop_while_the_export_waits)
        thread.start()
        try:
            yield outage
        finally:
            stop.set()
            thread.join()
