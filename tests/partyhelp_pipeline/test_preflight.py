"""The pre-flight check (``partyhelp_pipeline.preflight``) on the real local stack.

Every test makes its own source database (with its SELECT-only reader), bucket and dataset
name. A healthy configuration passes every check and leaves its bucket exactly as it was;
each way of breaking it gives a FAIL line naming what is wrong: two missing settings at once,
a wrong MySQL password, a user that could write, a missing bucket (nothing written anywhere),
a dataset in another location than the bucket, a dropped source column. ``main_check``
prints one line per check and exits 0 or 1. Dead GCS and BigQuery endpoints fail their
lines within the retry window instead of hanging, and so do hung ones (SIGSTOPped emulators
of a private pair) within a call's timeout more.

The emulators' own behaviour, relied on here: fake-gcs-server puts every bucket in its one
``-location`` (``US-CENTRAL1`` by default), whatever the create request asks (the tests read
it back rather than assume it); the BigQuery
emulator keeps a dataset's location as created, and runs dry-run queries (it parses and
resolves them, runs nothing) without checking any permission.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import os
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import bigquery, storage

from partyhelp_pipeline.preflight import (
    CALL_TIMEOUT_SECONDS,
    LATER_CHECKS,
    CheckResult,
    cheap_checks,
    check_prefect,
    check_settings,
    location_problem,
    main_check,
    run_checks,
    write_privileges,
)
from partyhelp_pipeline.settings import EMULATOR_VARIABLES, load_settings
from partyhelp_pipeline.spec import TABLES
from tests.alerting import private_prefect_server, using_prefect_server
from tests.conftest import READER_PASSWORD, admin_connection, create_bucket
from tests.emulators import PortTaken, PrivateEmulators, env_vars, free_port, private_emulators
from tests.faultkit import Source, new_target, source_database

pytestmark = pytest.mark.usefixtures("stack")

PLAN_CHECKS = [check for name in TABLES for check in (f"plan {name}", f"freshness {name}")]
ALL_CHECKS = [
    "settings",
    "prefect",
    "mysql",
    "bucket",
    "location",
    "bigquery",
    "drift",
    *PLAN_CHECKS,
]
PROJECT = "partyhelp-test"


@pytest.fixture()
def source() -> Iterator[Source]:
    """This test's own small source database and its SELECT-only reader."""
    with source_database("ph_preflight", scale=0.02, seed=11, edge_cases=False) as made:
        yield made


@pytest.fixture()
def env(source: Source) -> dict[str, str]:
    """The variables of a healthy configuration: this test's database, a new bucket
    (created) and a new dataset name (not created: the flow would create it, in US)."""
    emulators = {name: os.environ[name] for name in EMULATOR_VARIABLES}
    return {**emulators, **new_target(source, "preflight")}


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {result.name: result for result in results}


def anonymous() -> Credentials:
    make: Callable[[], Credentials] = AnonymousCredentials  # the emulators' credentials
    return make()


def gcs() -> storage.Client:
    return storage.Client(project=PROJECT, credentials=anonymous())


def bucket_state(bucket: str) -> dict[str, int]:
    """Every object of the bucket, with its generation."""
    return {blob.name: blob.generation for blob in gcs().list_blobs(bucket)}


def bucket_names() -> set[str]:
    return {bucket.name for bucket in gcs().list_buckets()}


def bucket_location(bucket: str) -> str:
    """Where the emulator put the bucket (fake-gcs-server: its ``-location``, for all)."""
    return str(gcs().get_bucket(bucket).location)


def another_location(location: str) -> str:
    """A BigQuery region other than ``location``, so not colocated with it."""
    return "europe-west1" if location.lower() == "australia-southeast1" else "australia-southeast1"


def create_dataset(env: dict[str, str], location: str) -> None:
    client = bigquery.Client(
        project=PROJECT,
        credentials=anonymous(),
        client_options={"api_endpoint": env["BIGQUERY_EMULATOR_HOST"]},
    )
    dataset = bigquery.Dataset(f"{PROJECT}.{env['PARTYHELP_BQ_DATASET']}")
    dataset.location = location
    client.create_dataset(dataset)


def source_count(database: str, table: str) -> int:
    with admin_connection(database) as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM `{table}`")
        (rows,) = cursor.fetchone()
    return int(rows)


def grant(source: Source, privileges: str, scope: str) -> None:
    with admin_connection() as connection, connection.cursor() as cursor:
        for host in ("localhost", "127.0.0.1", "%"):
            cursor.execute(f"GRANT {privileges} ON {scope} TO %s@%s", (source.user, host))


# ------------------------------------------------------------------ a healthy configuration


def test_healthy_configuration_passes_and_leaves_the_bucket_as_it_was(
    env: dict[str, str], source: Source
) -> None:
    bucket = env["PARTYHELP_GCS_BUCKET"]
    gcs().bucket(bucket).blob("exports/sync_date=2026-01-01/kept.txt").upload_from_string(b"x")
    before = bucket_state(bucket)

    results = run_checks(env)

    assert [r.name for r in results] == ALL_CHECKS
    assert [r for r in results if not r.ok] == []
    assert bucket_state(bucket) == before  # the test object was written and deleted
    checks = by_name(results)
    assert checks["mysql"].detail == (
        f"connected to 127.0.0.1:3306 as {source.user}; SELECT only on `{source.database}`"
    )
    assert f"wrote and deleted gs://{bucket}/exports/_preflight/" in checks["bucket"].detail
    assert "will be created in PARTYHELP_BQ_LOCATION=US" in checks["location"].detail
    assert f"gs://{bucket} is in {bucket_location(bucket)}" in checks["location"].detail
    assert "emulator, which checks no permissions" in checks["bigquery"].detail
    assert checks["prefect"].detail == session_prefect_line()
    for spec in TABLES.values():
        rows = source_count(source.database, spec.source_table)
        assert checks[f"plan {spec.name}"].detail.startswith(
            f"{rows:,} rows of {spec.source_table} in 1 chunk of at most 5,000,000 rows"
        )
    assert all(READER_PASSWORD not in r.line and "\n" not in r.line for r in results)


def test_existing_dataset_in_the_bucket_s_location_passes(env: dict[str, str]) -> None:
    create_dataset(env, "US")
    checks = by_name(run_checks(env))
    assert checks["location"].ok, checks["location"].line
    assert checks["location"].detail.startswith(
        f"dataset {PROJECT}.{env['PARTYHELP_BQ_DATASET']} is in US;"
    )
    assert checks["bigquery"].ok, checks["bigquery"].line
    assert "INFORMATION_SCHEMA.TABLES" in checks["bigquery"].detail


def test_cheap_checks_read_the_bucket_and_the_dataset_only(env: dict[str, str]) -> None:
    bucket = env["PARTYHELP_GCS_BUCKET"]
    before = bucket_state(bucket)
    # MySQL on a port nobody listens on: the cheap checks never ask it.
    settings = load_settings({**env, "PARTYHELP_MYSQL_PORT": str(free_port())})
    results = cheap_checks(settings)
    assert [(r.name, r.ok) for r in results] == [("bucket", True), ("location", True)]
    assert results[0].detail == f"gs://{bucket} exists ({bucket_location(bucket)})"
    assert bucket_state(bucket) == before


# ------------------------------------------------------------------ each failure, named


def test_two_missing_settings_are_named_at_once(env: dict[str, str]) -> None:
    del env["PARTYHELP_MYSQL_HOST"], env["PARTYHELP_GCS_BUCKET"]
    results = run_checks(env)
    settings = results[0]
    assert settings.name == "settings" and not settings.ok
    assert "PARTYHELP_MYSQL_HOST is not set" in settings.detail
    assert "PARTYHELP_GCS_BUCKET is not set" in settings.detail
    assert results[1].name == "prefect" and results[1].ok  # it needs no setting of ours
    assert [r.name for r in results[2:]] == list(LATER_CHECKS)
    assert all(
        not r.ok and r.detail == "not checked: needs valid settings (see settings)"
        for r in results[2:]
    )


def test_the_settings_check_warns_when_the_test_clock_is_set(env: dict[str, str]) -> None:
    quiet, _ = check_settings(env)
    loud, _ = check_settings({**env, "PARTYHELP_CLOCK_DATE": "2026-11-25"})
    assert quiet.ok and loud.ok and "WARNING" not in quiet.line
    assert loud.line.endswith(
        "; WARNING: the test clock PARTYHELP_CLOCK_DATE=2026-11-25 is "
        "set: every sync takes that day as today (unset it in "
        "production)"
    )


def test_wrong_mysql_password_fails_mysql_and_the_source_checks(
    env: dict[str, str], source: Source
) -> None:
    wrong = "wrong-" + secrets.token_hex(8)
    results = run_checks({**env, "PARTYHELP_MYSQL_PASSWORD": wrong})
    checks = by_name(results)
    mysql = checks["mysql"]
    assert not mysql.ok
    assert mysql.detail.startswith(f"cannot connect to MySQL at 127.0.0.1:3306 as {source.user}")
    assert "Access denied" in mysql.detail
    assert [(r.name, r.ok, r.detail) for r in results[-2:]] == [
        ("drift", False, "not checked: needs MySQL (see mysql)"),
        ("plan", False, "not checked: needs MySQL (see mysql)"),
    ]
    assert checks["bucket"].ok and checks["location"].ok and checks["bigquery"].ok
    assert all(wrong not in r.line for r in results)


def test_a_user_that_could_write_fails(env: dict[str, str], source: Source) -> None:
    grant(source, "INSERT, UPDATE, DELETE", f"`{source.database}`.*")
    checks = by_name(run_checks(env))
    mysql = checks["mysql"]
    assert not mysql.ok
    assert mysql.detail.startswith(
        f"connected to 127.0.0.1:3306 as {source.user}, which "
        f"could write: INSERT, UPDATE, DELETE on `{source.database}`.*"
    )
    assert mysql.detail.endswith(
        f"The sync needs SELECT only on `{source.database}`: revoke the rest"
    )
    assert checks["drift"].ok and all(checks[name].ok for name in PLAN_CHECKS)


def test_missing_bucket_fails_naming_it_and_writes_nothing(env: dict[str, str]) -> None:
    missing = f"ph-preflight-missing-{secrets.token_hex(4)}"
    env["PARTYHELP_GCS_BUCKET"] = missing
    buckets = bucket_names()

    results = run_checks(env)
    cheap = cheap_checks(load_settings(env))

    assert bucket_names() == buckets  # nothing was created
    expected = CheckResult(
        "bucket",
        False,
        f"gs://{missing} does not exist: run python -m "
        "scripts.setup (docs/OPERATIONS.md, section 1)",
    )
    assert by_name(results)["bucket"] == expected
    assert expected.line.startswith(f"FAIL  bucket: gs://{missing} does not exist")
    assert by_name(results)["location"] == CheckResult(
        "location", False, "not checked: needs the bucket (see bucket)"
    )
    assert cheap == [expected, by_name(results)["location"]]


def test_dataset_in_another_location_than_the_bucket_fails(env: dict[str, str]) -> None:
    dataset, bucket = f"{PROJECT}.{env['PARTYHELP_BQ_DATASET']}", env["PARTYHELP_GCS_BUCKET"]
    held = bucket_location(bucket)
    elsewhere = another_location(held)
    create_dataset(env, elsewhere)
    expected = (
        f"dataset {dataset} is in {elsewhere}, but bucket gs://{bucket} is in {held}: "
        "BigQuery loads into it only from a bucket in that location"
    )

    location = by_name(run_checks(env))["location"]
    cheap = cheap_checks(load_settings(env))

    assert location == CheckResult("location", False, expected)
    assert cheap[1] == location


def test_dataset_to_be_created_in_another_location_fails(env: dict[str, str]) -> None:
    bucket = env["PARTYHELP_GCS_BUCKET"]
    held = bucket_location(bucket)
    env["PARTYHELP_BQ_LOCATION"] = elsewhere = another_location(held)
    location = cheap_checks(load_settings(env))[1]
    assert not location.ok
    assert location.detail == (
        f"dataset {PROJECT}.{env['PARTYHELP_BQ_DATASET']} does not exist: it will be created "
        f"in PARTYHELP_BQ_LOCATION={elsewhere}, but bucket gs://{bucket} is in {held}: "
        "BigQuery loads into it only from a bucket in that location"
    )


def test_dropped_source_column_fails_drift(env: dict[str, str], source: Source) -> None:
    with admin_connection(source.database) as connection, connection.cursor() as cursor:
        cursor.execute("ALTER TABLE venues DROP COLUMN suburb")
    checks = by_name(run_checks(env))
    drift = checks["drift"]
    assert not drift.ok
    assert "ph_venues: source column venues.suburb is missing" in drift.detail
    assert checks["mysql"].ok and all(checks[name].ok for name in PLAN_CHECKS)


def test_dead_endpoints_fail_within_the_retry_window(env: dict[str, str]) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    settings = load_settings(
        {
            **env,
            "STORAGE_EMULATOR_HOST": dead,
            "BIGQUERY_EMULATOR_HOST": dead,
            "PARTYHELP_GCS_RETRY_SECONDS": "1",
            "PARTYHELP_BQ_RETRY_SECONDS": "1",
        }
    )
    started = time.monotonic()
    results = cheap_checks(settings)
    assert time.monotonic() - started < 30
    assert not results[0].ok
    assert results[0].detail == (
        f"GCS at {dead} did not answer within 1 s (connection "
        "refused): is the emulator running? scripts/stack.sh status"
    )
    assert results[0].unreachable is not None and results[0].unreachable.service == "GCS"


def test_hung_endpoints_fail_within_a_call_timeout_and_the_retry_window() -> None:
    """Services that accept connections but never answer (SIGSTOPped, on a private pair):
    each cheap check fails in about ``CALL_TIMEOUT_SECONDS`` plus the retry window."""
    with private_emulators() as pair:
        bucket, dataset = f"ph-preflight-hung-{secrets.token_hex(4)}", "ph_preflight_hung"
        create_bucket(bucket)
        settings = load_settings(
            {
                **pair.client_env,
                "PARTYHELP_MYSQL_HOST": "127.0.0.1",
                "PARTYHELP_MYSQL_USER": "nobody",
                "PARTYHELP_MYSQL_DATABASE": "nothing",
                "PARTYHELP_GCS_BUCKET": bucket,
                "PARTYHELP_BQ_DATASET": dataset,
                "PARTYHELP_BQ_LOCATION": "US",
                "PARTYHELP_GCS_RETRY_SECONDS": "1",
                "PARTYHELP_BQ_RETRY_SECONDS": "1",
            }
        )
        bound = CALL_TIMEOUT_SECONDS + 1 + 5  # the call's timeout, the window, some slack
        for service, failed in (("gcs", 0), ("bigquery", 1)):
            pair.freeze(service)
            try:
                started = time.monotonic()
                results = cheap_checks(settings)
                took = time.monotonic() - started
            finally:
                pair.thaw(service)
            assert took < bound, (service, took, results)
            assert not results[failed].ok, results
            name = "GCS" if service == "gcs" else "BigQuery"
            address = pair.client_env[
                "STORAGE_EMULATOR_HOST" if service == "gcs" else "BIGQUERY_EMULATOR_HOST"
            ]
            assert results[failed].detail == (
                f"{name} at {address} did not answer within 1 s (timed out): is the emulator "
                "running? scripts/stack.sh status"
            )


def test_a_private_pair_never_takes_over_a_port_another_stack_answers_on() -> None:
    """The hung-endpoint test freezes its pair's own server, never one that answered first on
    a port ``free_port`` handed out (another pair's, which the freeze would not test)."""
    pair = PrivateEmulators()
    taken = int(os.environ["STORAGE_EMULATOR_HOST"].rsplit(":", 1)[1])  # the session's GCS
    pair.gcs_port, pair.env["PARTYHELP_GCS_PORT"] = taken, str(taken)
    try:
        with pytest.raises(PortTaken, match=f"gcs: port {taken} answers for another stack"):
            pair.start("gcs")
        pair.stop_all()  # stops only what is its own: the session's GCS still answers
        assert pair.is_up("gcs") and not pair.owns("gcs")
    finally:
        shutil.rmtree(pair.data, ignore_errors=True)


# ------------------------------------------------------------------ the command's output


def test_main_check_prints_one_line_per_check_and_exits_0_or_1(env: dict[str, str]) -> None:
    out = io.StringIO()
    assert main_check(env, out) == 0
    lines = out.getvalue().splitlines()
    assert [line.split(":", 1)[0] for line in lines] == [f"ok    {n}" for n in ALL_CHECKS]

    env["PARTYHELP_MYSQL_PASSWORD"] = "wrong-" + secrets.token_hex(8)
    out = io.StringIO()
    assert main_check(env, out) == 1
    lines = out.getvalue().splitlines()
    assert len(lines) == len(ALL_CHECKS) - len(PLAN_CHECKS) + 1
    assert [line[:6] for line in lines] == [
        "ok    ",
        "ok    ",
        "FAIL  ",
        "ok    ",
        "ok    ",
        "ok    ",
        "FAIL  ",
        "FAIL  ",
    ]
    assert lines[2].startswith("FAIL  mysql: cannot connect to MySQL at 127.0.0.1:3306")


# ------------------------------------------------------------------ the rules, as data


def test_write_privileges_reads_show_grants_lines() -> None:
    lines = [
        "GRANT USAGE ON *.* TO `rd`@`%` IDENTIFIED BY PASSWORD '*ABC'",
        "GRANT SELECT, SHOW VIEW ON `ph_db`.* TO `rd`@`%`",
        "GRANT INSERT ON `other_db`.* TO `rd`@`%`",
        "GRANT SELECT (`id`), UPDATE (`name`) ON `ph_db`.`venues` TO `rd`@`%`",
        "GRANT `reporting` TO `rd`@`%`",
    ]
    assert write_privileges(lines, "ph_db") == ["UPDATE on `ph_db`.`venues`"]
    assert write_privileges(
        ["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"], "ph_db"
    ) == ["ALL PRIVILEGES, GRANT OPTION on *.*"]
    # A database grant's _ and % are wildcards unless escaped.
    assert write_privileges(["GRANT DELETE ON `ph_%`.* TO `rd`@`%`"], "ph_db") == [
        "DELETE on `ph_%`.*"
    ]
    assert write_privileges(["GRANT DELETE ON `ph\\_db`.* TO `rd`@`%`"], "phxdb") == []
    assert write_privileges(lines[:2], "ph_db") == []


@pytest.mark.parametrize(
    ("bucket", "dataset", "ok"),
    [
        ("US-CENTRAL1", "US", True),  # the US multi-region loads from anywhere
        ("AUSTRALIA-SOUTHEAST1", "US", True),
        ("AUSTRALIA-SOUTHEAST1", "australia-southeast1", True),
        ("EU", "EU", True),
        ("EUROPE-WEST1", "EU", True),  # a region inside the EU multi-region
        ("US", "australia-southeast1", False),
        ("ASIA", "australia-southeast1", False),
        ("US-CENTRAL1", "EU", False),
        ("EU", "europe-west1", False),  # a regional dataset needs its own region
    ],
)
def test_location_rule(bucket: str, dataset: str, ok: bool) -> None:
    assert (location_problem(bucket, dataset) is None) == ok


# ------------------------------------------------------------------ how Prefect is reached


@contextmanager
def prefect_client(url: str, auth_string: str | None = None) -> Iterator[None]:
    """This process's Prefect client pointed at ``url``, with ``auth_string`` or, when None,
    none at all (even if the session's stack runs authenticated)."""
    from prefect.settings import PREFECT_API_AUTH_STRING, temporary_settings

    session_string = os.environ.pop("PREFECT_API_AUTH_STRING", None)
    string = (
        temporary_settings({PREFECT_API_AUTH_STRING: auth_string})
        if auth_string
        else temporary_settings(restore_defaults={PREFECT_API_AUTH_STRING})
    )
    try:
        extra = {"PREFECT_API_AUTH_STRING": auth_string} if auth_string else {}
        with using_prefect_server(url), env_vars(extra), string:
            yield
    finally:
        if session_string is not None:
            os.environ["PREFECT_API_AUTH_STRING"] = session_string


def session_prefect_line() -> str:
    """The ``prefect`` detail the session's own server gives (run authenticated or not)."""
    url = os.environ["PREFECT_API_URL"].rstrip("/")
    if os.environ.get("PREFECT_API_AUTH_STRING"):
        return f"authenticated server at {url} (basic authentication)"
    return f"open server at {url} (no authentication; fine on loopback only)"


def non_loopback_address() -> str:
    """An address of this machine that is not loopback (the one its default route uses)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.123", 9))  # UDP: picks the route's source, sends nothing
        address = str(probe.getsockname()[0])
    assert not ipaddress.ip_address(address).is_loopback, address
    return address


@contextmanager
def tcp_forwarder(listen_host: str, target_port: int) -> Iterator[int]:
    """A real TCP forwarder (threads copying bytes, no fake): ``listen_host:<port>`` to
    ``127.0.0.1:target_port``; yields the port. The stack's servers bind 127.0.0.1 only
    (``HOST`` in scripts/stack.sh), so this is how a server is reached off loopback."""
    listener = socket.create_server((listen_host, 0))
    stop = threading.Event()

    def pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", target_port))
            for ends in ((client, upstream), (upstream, client)):
                threading.Thread(target=pipe, args=ends, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        listener.close()


@pytest.fixture(scope="module")
def open_server(stack: None) -> Iterator[str]:
    """A private Prefect server without authentication, on 127.0.0.1; its API URL."""
    # Open whatever the session's stack runs with (CI's is authenticated).
    with private_prefect_server(PARTYHELP_PREFECT_AUTH_STRING="") as url:
        yield url


def test_the_session_s_server_on_loopback_passes() -> None:
    result = check_prefect()
    assert result.ok, result.line
    assert result.detail == session_prefect_line()


def test_an_authenticated_server_passes_and_a_wrong_string_fails(stack: None) -> None:
    auth = f"admin:{secrets.token_hex(12)}"
    wrong = f"admin:wrong-{secrets.token_hex(12)}"
    with private_prefect_server(PARTYHELP_PREFECT_AUTH_STRING=auth) as url:
        with prefect_client(url, auth):
            passed = check_prefect()
        with prefect_client(url, wrong):
            refused = check_prefect()
        with prefect_client(url):
            without = check_prefect()
    assert passed.ok and passed.detail == f"authenticated server at {url} (basic authentication)"
    assert not refused.ok
    assert refused.detail.startswith(f"the server at {url} refused PREFECT_API_AUTH_STRING")
    assert not without.ok  # no string: the server refuses, and the line says what to set
    assert without.detail.startswith(f"the server at {url} asks for authentication: set PREFECT_")
    for result in (passed, refused, without):
        for string in (auth, wrong):
            assert string not in result.line and string.split(":")[1] not in result.line


def test_an_open_server_off_loopback_fails_naming_the_risk(open_server: str) -> None:
    address = non_loopback_address()
    port = int(open_server.rsplit(":", 1)[1].split("/")[0])
    with tcp_forwarder(address, port) as forwarded:
        url = f"http://{address}:{forwarded}/api"
        with prefect_client(url):
            result = check_prefect()
    assert not result.ok
    assert result.line == (
        f"FAIL  prefect: open server at {url}: anyone who reaches it reads the MySQL password "
        "through its API (POST /api/block_documents/filter); turn on basic authentication "
        "(PREFECT_SERVER_API_AUTH_STRING on the server, PREFECT_API_AUTH_STRING here) and "
        "keep it inside your network: docs/OPERATIONS.md, 'The control plane'"
    )


def test_a_server_that_does_not_answer_fails_naming_it(stack: None) -> None:
    # A real socket that listens and never answers: the request hangs until its timeout.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/api"
        with prefect_client(url):
            started = time.monotonic()
            result = check_prefect()
            waited = time.monotonic() - started
    assert 9 < waited < 15
    assert not result.ok
    assert result.detail.startswith(f"the Prefect server at {url} did not answer within 10 s")


def test_a_secret_in_a_deployment_s_job_variables_fails_without_its_value(
    open_server: str,
) -> None:
    from prefect.client.orchestration import get_client

    password = f"mysql-{secrets.token_hex(12)}"
    name = f"plain-{secrets.token_hex(4)}"
    with prefect_client(open_server):
        with get_client(sync_client=True) as client:
            flow_id = client.create_flow_from_name("partyhelp-bigquery-sync")
            client.create_deployment(
                flow_id, name, job_variables={"env": {"PARTYHELP_MYSQL_PASSWORD": password}}
            )
            client.create_deployment(  # a block reference is not a plain value
                flow_id,
                f"{name}-ref",
                job_variables={"env": {"PARTYHELP_PII_SALT": "{{ prefect.blocks.secret.s }}"}},
            )
        result = run_checks(None)[1]
    assert result.name == "prefect" and not result.ok
    assert result.detail == (
        f"open server at {open_server} (no authentication; fine on loopback only); "
        f"deployment partyhelp-bigquery-sync/{name} holds PARTYHELP_MYSQL_PASSWORD (in "
        "job_variables.env) in plain text, readable by anyone who may read deployments: "
        "remove it and keep it in a Secret block named by PARTYHELP_MYSQL_PASSWORD_BLOCK"
    )
    assert password not in result.line
