"""Test fixtures on the real local stack: MariaDB, fake-gcs-server, local-bigquery, Prefect.

``scripts/test.sh`` installs and starts the services (``scripts/stack.sh``) and exports
their addresses. Each test session gets its own MariaDB database (built from
``sql/mysql/partyhelp_schema.sql`` and the synthetic generator), a SELECT-only
MySQL user, its own GCS bucket and its own BigQuery dataset, and Prefect results in
a temporary folder so nothing cached by an earlier session can leak in.

Modules that only read what a standard sync leaves share one (``standard_sync``): each
xdist worker is a session of its own (``--dist loadfile``), so it runs once a worker.

Markers (pyproject.toml, ``--strict-markers``): ``services`` is put on every test whose
fixtures include ``stack`` (below), and by hand on a module that starts services of its own;
``smoke`` marks the one end-to-end sync of the quick mode, ``scripts/test.sh --quick``:
``-m "not services or smoke"``.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Prefect reads its settings when imported: set them before anything imports it.
os.environ.setdefault("PREFECT_API_URL", "http://127.0.0.1:4200/api")
os.environ["PREFECT_LOCAL_STORAGE_PATH"] = tempfile.mkdtemp(prefix="partyhelp-results-")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("STORAGE_EMULATOR_HOST", "http://127.0.0.1:4443")
os.environ.setdefault("BIGQUERY_EMULATOR_HOST", "http://127.0.0.1:9050")
os.environ.setdefault("PARTYHELP_RETRY_DELAY_SECONDS", "0.2")
os.environ.setdefault("PARTYHELP_TASK_RETRIES", "2")

import pymysql
import pytest

from tests.emulators import PrivateEmulators, env_vars, private_emulators

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_SQL = ROOT / "sql" / "mysql" / "partyhelp_schema.sql"
MYSQL_HOST = os.environ.get("PARTYHELP_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("PARTYHELP_TEST_MYSQL_PORT", "3306"))
MYSQL_ADMIN = {"host": MYSQL_HOST, "port": MYSQL_PORT, "user": "root", "password": ""}
READER_PASSWORD = "rd-" + secrets.token_hex(12)  # a secret the tests look for in outputs


def _port_open(url_or_host: str, port: int | None = None) -> bool:
    host = url_or_host
    if port is None:
        host, port_text = url_or_host.split("://", 1)[-1].split("/")[0].rsplit(":", 1)
        port = int(port_text)
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``services`` every test that needs the running stack: those whose fixtures
    include ``stack``, the fixture every service-using fixture depends on.

    Derived from the fixtures, not listed by hand: a new test is a quick-mode test unless it
    uses the stack, so the quick mode cannot silently lose the unit tests added later; a
    service test that forgets ``stack`` shows up, in a quick run, as slow or failing.
    """
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.services)


@pytest.fixture(scope="session")
def stack() -> None:
    """Fail fast, with the fix, when the local stack is not running."""
    down = [
        name
        for name, ok in (
            ("MariaDB", _port_open(MYSQL_HOST, MYSQL_PORT)),
            ("fake-gcs-server", _port_open(os.environ["STORAGE_EMULATOR_HOST"])),
            ("local-bigquery", _port_open(os.environ["BIGQUERY_EMULATOR_HOST"])),
            ("Prefect server", _port_open(os.environ["PREFECT_API_URL"])),
        )
        if not ok
    ]
    if down:
        pytest.fail(
            f"not running: {', '.join(down)}. Start the stack: scripts/stack.sh start "
            "(scripts/test.sh does it for you)",
            pytrace=False,
        )


def admin_connection(database: str | None = None, **extra: Any) -> pymysql.Connection:
    """A root connection (test setup only; the sync itself runs as a SELECT-only user)."""
    return pymysql.connect(
        **MYSQL_ADMIN, database=database, charset="utf8mb4", autocommit=True, **extra
    )


def run_sql_file(connection: pymysql.Connection, path: Path) -> None:
    """Run a file of ``;``-terminated statements."""
    text = path.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    with connection.cursor() as cursor:
        for statement in "\n".join(lines).split(";\n"):
            if statement.strip():
                cursor.execute(statement)


def create_source_database(prefix: str = "ph_test") -> str:
    """A new empty source database with the Partyhelp schema."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with admin_connection() as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    with admin_connection(name) as connection:
        run_sql_file(connection, SCHEMA_SQL)
    return name


def drop_database(name: str) -> None:
    """Drop a test database."""
    with admin_connection() as connection, connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


def create_reader(database: str) -> str:
    """A SELECT-only user on ``database``; returns its name."""
    user = f"rd_{secrets.token_hex(4)}"
    with admin_connection() as connection, connection.cursor() as cursor:
        for host in ("localhost", "127.0.0.1", "%"):
            cursor.execute("CREATE USER %s@%s IDENTIFIED BY %s", (user, host, READER_PASSWORD))
            cursor.execute(f"GRANT SELECT ON `{database}`.* TO %s@%s", (user, host))
    return user


def drop_reader(user: str) -> None:
    """Drop a reader user."""
    with admin_connection() as connection, connection.cursor() as cursor:
        for host in ("localhost", "127.0.0.1", "%"):
            cursor.execute("DROP USER IF EXISTS %s@%s", (user, host))


def sync_environment(
    database: str, user: str, bucket: str, dataset: str, **overrides: str
) -> dict[str, str]:
    """The PARTYHELP_* variables for a sync of ``database`` into ``dataset``."""
    env = {
        "PARTYHELP_MYSQL_HOST": MYSQL_HOST,
        "PARTYHELP_MYSQL_PORT": str(MYSQL_PORT),
        "PARTYHELP_MYSQL_USER": user,
        "PARTYHELP_MYSQL_PASSWORD": READER_PASSWORD,
        "PARTYHELP_MYSQL_DATABASE": database,
        "PARTYHELP_GCS_BUCKET": bucket,
        "PARTYHELP_GCS_PREFIX": "exports",
        "PARTYHELP_BQ_PROJECT": "partyhelp-test",
        "PARTYHELP_BQ_DATASET": dataset,
        "PARTYHELP_BQ_LOCATION": "US",
        "PARTYHELP_PART_MAX_BYTES": str(8 * 1024),
        "PARTYHELP_BATCH_ROWS": "100",
    }
    env.update(overrides)
    return env


def create_bucket(name: str) -> None:
    """Create a bucket on fake-gcs-server."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project="partyhelp-test", credentials=AnonymousCredentials())
    client.create_bucket(name)


@pytest.fixture(scope="session", autouse=True)
def session_emulators() -> Iterator[PrivateEmulators | None]:
    """A fresh fake-gcs-server and BigQuery emulator for this test session.

    The shared stack's emulators keep their data across runs, and the BigQuery emulator
    slows as its catalog grows; a private pair on free ports and a temporary folder keeps
    every session fast and independent of what earlier sessions (or a developer) left.
    Set PARTYHELP_TEST_SHARED_EMULATORS=1 to use the shared ones instead.
    """
    if os.environ.get("PARTYHELP_TEST_SHARED_EMULATORS") == "1":
        yield None
        return
    with private_emulators() as pair:
        yield pair


@pytest.fixture(scope="module")
def emulators(stack: None) -> Iterator[PrivateEmulators]:
    """The module's own fake-gcs-server and BigQuery emulator (see ``private_emulators``),
    stopped and wiped at the module's end. A module that stops GCS or BigQuery, or that
    must not share a catalog with the others, asks for it in its ``pytestmark``."""
    with private_emulators() as pair:
        yield pair


@pytest.fixture(scope="session")
def source_db(stack: None) -> Iterator[dict[str, Any]]:
    """A source database with synthetic data and every legacy edge case, and its reader."""
    from scripts import synthetic

    database = create_source_database()
    synthetic.load(MYSQL_ADMIN, database, scale=0.2, seed=7, edge_cases=True)
    user = create_reader(database)
    yield {"database": database, "user": user}
    drop_reader(user)
    drop_database(database)


@pytest.fixture()
def sync_env(source_db: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment of a sync into a fresh bucket and dataset; returns the variables."""
    token = secrets.token_hex(4)
    bucket, dataset = f"ph-test-{token}", f"ph_test_{token}"
    create_bucket(bucket)
    env = sync_environment(source_db["database"], source_db["user"], bucket, dataset)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


STANDARD_SYNC_DATE = dt.date(2026, 11, 25)


@pytest.fixture(scope="session")
def standard_sync(
    source_db: dict[str, Any], session_emulators: PrivateEmulators | None
) -> dict[str, Any]:
    """One full sync of ``source_db`` on ``STANDARD_SYNC_DATE``, into a bucket and dataset of
    its own, for every module of the worker that only reads what a sync leaves: its final
    ``state``, its ``settings`` and the ``env`` it ran with (GCS and BigQuery included: read
    within ``env_vars(env)`` from a module on emulators of its own). Its flow run is on the
    session's Prefect server: a module on a server of its own (tests/alerting.py) reads it
    from there, or not at all.

    READ ONLY: a test that syncs again, writes to its bucket or dataset, or changes the
    source, breaks every later reader; it makes a target of its own (``sync_env``,
    ``faultkit.new_target``) instead.
    """
    from flows.partyhelp_sync import partyhelp_bigquery_sync
    from partyhelp_pipeline.settings import load_settings

    token = secrets.token_hex(4)
    bucket, dataset = f"ph-std-{token}", f"ph_std_{token}"
    emulators = session_emulators.client_env if session_emulators else {}
    with env_vars(emulators):  # the session's pair, whichever a module has switched to
        create_bucket(bucket)
    env = {
        **sync_environment(source_db["database"], source_db["user"], bucket, dataset),
        **emulators,
    }
    # The test clock (faultkit.clock_at, which conftest cannot import: faultkit imports it).
    with env_vars({**env, "PARTYHELP_CLOCK_DATE": STANDARD_SYNC_DATE.isoformat()}):
        state = partyhelp_bigquery_sync(sync_date=STANDARD_SYNC_DATE, return_state=True)
        return {"state": state, "settings": load_settings(), "env": env}
