"""TLS to MySQL, on a private MariaDB server started with TLS (issue 10, section 7).

The module makes a CA, a server certificate for ``localhost`` only (so ``127.0.0.1`` is a
wrong host name for it), a client certificate, and a second, unrelated CA; it starts the
machine's own ``mariadbd`` with them on a port, data directory and socket of its own
(``tests/tls_mariadb.py``), loads a small synthetic database, and creates three
SELECT-only users: one ``REQUIRE SSL``, one ``REQUIRE X509``, one without TLS required.
The shared server on 3306 has no TLS: it is the server "without TLS" (connected to, read
nothing). Both drivers go through the project's own ``partyhelp_pipeline.source.connect``.

- ``verify_identity`` to ``localhost``: the session is encrypted (``Ssl_cipher``), and a
  real sync of ``ph_venues`` completes as the ``REQUIRE SSL`` user;
- a wrong CA and a wrong host name fail with one line naming TLS, are not transient, and
  the flow fails once, naming TLS, without a retry;
- ``disabled`` uses no TLS and is refused for the ``REQUIRE SSL`` user;
- ``preferred`` uses TLS when offered and plain otherwise; ``required`` fails without TLS;
- the CA, client certificate and key from Prefect Secret blocks: private files, removed
  when the process exits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import secrets
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from pydantic import SecretStr

from partyhelp_pipeline.errors import SourceUnavailableError, is_tls_failure, is_transient
from partyhelp_pipeline.settings import Driver, MySQLSettings, SslMode
from partyhelp_pipeline.source import connect, session_cipher
from tests.conftest import MYSQL_HOST, MYSQL_PORT, READER_PASSWORD, ROOT
from tests.faultkit import (
    Source,
    environment,
    flow_run_record,
    free_port,
    new_target,
    query,
    sync_on,
)
from tests.tls_mariadb import TlsMariaDB, issue, make_authority, tls_mariadb, write_private

pytestmark = pytest.mark.usefixtures("stack")

DATABASE = "ph_tls"
DAY = dt.date(2026, 9, 1)
TLS_USER, CERT_USER, PLAIN_USER = "rd_tls", "rd_x509", "rd_plain"
DRIVERS: list[Driver] = ["mysqlclient", "pymysql"]


@dataclasses.dataclass(frozen=True)
class Pki:
    """The module's certificates, as files."""

    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca, other = make_authority("partyhelp test CA"), make_authority("another CA")
    server_cert, server_key = issue(ca, ["localhost"])  # not 127.0.0.1: a wrong name
    client_cert, client_key = issue(ca, [], client=True)
    return Pki(
        *(
            write_private(folder / name, data)
            for name, data in (
                ("ca.pem", ca.pem),
                ("other-ca.pem", other.pem),
                ("server.pem", server_cert),
                ("server-key.pem", server_key),
                ("client.pem", client_cert),
                ("client-key.pem", client_key),
            )
        )
    )


@pytest.fixture(scope="module")
def server(pki: Pki) -> Iterator[TlsMariaDB]:
    """The private server with the synthetic database and the three users."""
    from scripts import synthetic

    with tls_mariadb(pki.ca, pki.server_cert, pki.server_key) as db:
        synthetic.load(db.admin, DATABASE, scale=0.01, seed=31, create_schema=True)
        for user, require in ((TLS_USER, "SSL"), (CERT_USER, "X509"), (PLAIN_USER, "NONE")):
            db.sql(
                f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s REQUIRE {require}", (READER_PASSWORD,)
            )
            db.sql(f"GRANT SELECT ON `{DATABASE}`.* TO '{user}'@'%'")
        yield db


def mysql(server: TlsMariaDB, driver: Driver, mode: SslMode, **changes: Any) -> MySQLSettings:
    """Settings for the private server as ``TLS_USER`` on ``localhost``, CA the module's."""
    base = MySQLSettings(
        host="localhost",
        port=server.port,
        user=TLS_USER,
        password=SecretStr(READER_PASSWORD),
        database=DATABASE,
        driver=driver,
        ssl_mode=mode,
    )
    return dataclasses.replace(base, **changes)


def shared_server(driver: Driver, mode: SslMode, **changes: Any) -> MySQLSettings:
    """Settings for the shared server, which has no TLS (root, read nothing)."""
    return dataclasses.replace(
        MySQLSettings(
            host=MYSQL_HOST,
            port=MYSQL_PORT,
            user="root",
            password=SecretStr(""),
            database="mysql",
            driver=driver,
            ssl_mode=mode,
        ),
        **changes,
    )


def session(settings: MySQLSettings) -> tuple[str, str]:
    """(current user, TLS cipher) of a new connection through the project's ``connect``."""
    connection = connect(settings)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT CURRENT_USER()")
            (user,) = cursor.fetchone()
        return str(user), session_cipher(connection)
    finally:
        connection.close()


def refused(settings: MySQLSettings) -> SourceUnavailableError:
    """The error of a connection that must fail: one line, without the password."""
    with pytest.raises(SourceUnavailableError) as caught:
        connect(settings).close()
    message = str(caught.value)
    print(f"{settings.driver}: {message}")  # the operator's view, shown with -s
    assert "\n" not in message
    assert READER_PASSWORD not in message
    return caught.value


def assert_tls_refusal(error: SourceUnavailableError, mode: SslMode) -> None:
    """Names TLS and the mode, and is not retried."""
    assert str(error).startswith("TLS to MySQL at "), error
    assert f"PARTYHELP_MYSQL_SSL_MODE={mode}" in str(error)
    assert error.transient is False and is_transient(error) is False


# ---------------------------------------------------------------- verify_identity


@pytest.mark.parametrize("driver", DRIVERS)
def test_verify_identity_encrypts_the_session(server: TlsMariaDB, pki: Pki, driver: Driver) -> None:
    user, cipher = session(mysql(server, driver, "verify_identity", ssl_ca=str(pki.ca)))
    print(f"{driver}: {user} Ssl_cipher={cipher}")
    assert user == f"{TLS_USER}@%"
    assert cipher  # e.g. TLS_AES_256_GCM_SHA384


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_sync_with_verify_identity_completes(
    server: TlsMariaDB, pki: Pki, driver: Driver
) -> None:
    accepted = int(server.sql("SHOW GLOBAL STATUS LIKE 'Ssl_accepts'")[0][1])
    env = new_target(
        Source(DATABASE, TLS_USER), "tls", **_tls_env(server, pki), PARTYHELP_MYSQL_DRIVER=driver
    )
    with environment(env) as settings:
        state = sync_on(DAY, tables=["ph_venues"])
        assert state.is_completed(), state.message
        table = settings.quoted_table_ref("ph_venues")
        loaded = query(settings, f"SELECT COUNT(*) AS n FROM {table}")[0]["n"]
    # The user is REQUIRE SSL: every session of the run was encrypted, or it was refused.
    assert loaded == server.sql("SELECT COUNT(*) FROM venues", database=DATABASE)[0][0] > 0
    assert int(server.sql("SHOW GLOBAL STATUS LIKE 'Ssl_accepts'")[0][1]) > accepted


def _tls_env(server: TlsMariaDB, pki: Pki, **changes: str) -> dict[str, str]:
    env = {
        "PARTYHELP_MYSQL_HOST": "localhost",
        "PARTYHELP_MYSQL_PORT": str(server.port),
        "PARTYHELP_MYSQL_SSL_MODE": "verify_identity",
        "PARTYHELP_MYSQL_SSL_CA": str(pki.ca),
        "PARTYHELP_CHUNK_ROWS": "2000000000",
    }
    return {**env, **changes}


# ---------------------------------------------------------------- wrong CA, wrong host name


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_wrong_ca_fails_naming_tls(server: TlsMariaDB, pki: Pki, driver: Driver) -> None:
    for mode in ("verify_ca", "verify_identity"):
        error = refused(mysql(server, driver, mode, ssl_ca=str(pki.other_ca)))
        assert_tls_refusal(error, mode)
        assert "certificate" in str(error)


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_wrong_host_name_fails_naming_tls(server: TlsMariaDB, pki: Pki, driver: Driver) -> None:
    # The same server and CA, reached as 127.0.0.1: a name its certificate does not hold.
    error = refused(mysql(server, driver, "verify_identity", host="127.0.0.1", ssl_ca=str(pki.ca)))
    assert_tls_refusal(error, "verify_identity")
    assert "'127.0.0.1'" in str(error)


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("case", ["wrong_ca", "wrong_host"])
def test_the_flow_fails_on_a_tls_error_without_a_retry(
    server: TlsMariaDB, pki: Pki, case: str, driver: Driver
) -> None:
    change = (
        {"PARTYHELP_MYSQL_SSL_CA": str(pki.other_ca)}
        if case == "wrong_ca"
        else {"PARTYHELP_MYSQL_HOST": "127.0.0.1"}
    )
    env = new_target(
        Source(DATABASE, TLS_USER),
        "tlsbad",
        **_tls_env(server, pki, PARTYHELP_MYSQL_DRIVER=driver, **change),
    )
    aborted = int(server.sql("SHOW GLOBAL STATUS LIKE 'Aborted_connects'")[0][1])
    with environment(env):
        state = sync_on(DAY, tables=["ph_venues"])
    print(f"{case} ({driver}): {state.message}")
    assert state.is_failed()
    assert "TLS to MySQL at " in str(state.message)
    assert "PARTYHELP_MYSQL_SSL_MODE=verify_identity" in str(state.message)
    record = flow_run_record(state.state_details.flow_run_id)
    assert record.task_runs and all(t.run_count <= 1 for t in record.task_runs), [
        (t.name, t.run_count) for t in record.task_runs
    ]
    # One refused handshake in all: nothing tried again (the server counts each).
    assert int(server.sql("SHOW GLOBAL STATUS LIKE 'Aborted_connects'")[0][1]) == aborted + 1


def test_a_failed_tls_check_is_not_transient_as_raised_by_the_driver(
    server: TlsMariaDB, pki: Pki
) -> None:
    # PyMySQL reports a failed handshake as 2003 "can't connect", like a refused port.
    with pytest.raises(pymysql.err.OperationalError) as tls:
        pymysql.connect(
            host="localhost",
            port=server.port,
            user=TLS_USER,
            password=READER_PASSWORD,
            ssl_ca=str(pki.other_ca),
            ssl_verify_identity=True,
        )
    with pytest.raises(pymysql.err.OperationalError) as down:
        pymysql.connect(
            host="127.0.0.1",
            port=_closed_port(),
            user=TLS_USER,
            password=READER_PASSWORD,
            connect_timeout=2,
        )
    assert tls.value.args[0] == down.value.args[0] == 2003
    assert is_tls_failure(tls.value) and not is_transient(tls.value)
    assert not is_tls_failure(down.value) and is_transient(down.value)


def _closed_port() -> int:
    return free_port()


# ---------------------------------------------------------------- disabled


@pytest.mark.parametrize("driver", DRIVERS)
def test_disabled_is_refused_for_a_user_created_require_ssl(
    server: TlsMariaDB, driver: Driver
) -> None:
    error = refused(mysql(server, driver, "disabled"))
    assert "error 1045: Access denied" in str(error)
    assert "PARTYHELP_MYSQL_SSL_MODE=disabled: if the user was created REQUIRE SSL" in str(error)
    assert not is_transient(error)


@pytest.mark.parametrize("driver", DRIVERS)
def test_disabled_uses_no_tls(server: TlsMariaDB, pki: Pki, driver: Driver) -> None:
    # Files set but mode disabled: still no TLS, on a server that offers it.
    settings = mysql(
        server,
        driver,
        "disabled",
        user=PLAIN_USER,
        ssl_ca=str(pki.ca),
        ssl_cert=str(pki.client_cert),
        ssl_key=str(pki.client_key),
    )
    assert session(settings) == (f"{PLAIN_USER}@%", "")


# ---------------------------------------------------------------- preferred, required


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("client_cert", [False, True], ids=["no-cert", "client-cert"])
def test_preferred_uses_tls_when_offered_and_plain_otherwise(
    server: TlsMariaDB, pki: Pki, driver: Driver, client_cert: bool
) -> None:
    files = (
        {"ssl_cert": str(pki.client_cert), "ssl_key": str(pki.client_key)} if client_cert else {}
    )
    user = CERT_USER if client_cert else PLAIN_USER  # X509: the certificate is presented
    # The other CA: preferred checks no certificate, as MySQL's client does.
    _, cipher = session(
        mysql(server, driver, "preferred", user=user, ssl_ca=str(pki.other_ca), **files)
    )
    assert cipher
    _, plain = session(shared_server(driver, "preferred", **files))
    assert plain == ""


@pytest.mark.parametrize("driver", DRIVERS)
def test_required_encrypts_without_checking_the_certificate(
    server: TlsMariaDB, pki: Pki, driver: Driver
) -> None:
    _, cipher = session(mysql(server, driver, "required", ssl_ca=str(pki.other_ca)))
    assert cipher


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("mode", ["required", "verify_identity"])
def test_a_mode_requiring_tls_fails_on_a_server_without_tls(
    pki: Pki, driver: Driver, mode: SslMode
) -> None:
    error = refused(shared_server(driver, mode, host="localhost", ssl_ca=str(pki.ca)))
    assert_tls_refusal(error, mode)


@pytest.mark.parametrize("driver", DRIVERS)
def test_verify_without_a_ca_file_trusts_the_systems_cas(
    server: TlsMariaDB, pki: Pki, driver: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = mysql(server, driver, "verify_identity")
    assert_tls_refusal(refused(settings), "verify_identity")  # our CA is not the system's
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))  # OpenSSL's own system-CA override
    assert session(settings)[1]


# ---------------------------------------------------------------- Secret blocks


@pytest.fixture(scope="module")
def pem_blocks(pki: Pki) -> Iterator[dict[str, str]]:
    """Secret blocks holding the CA, the client certificate and its key: the variables."""
    from prefect.blocks.system import Secret

    token = secrets.token_hex(4)
    names = {
        variable: f"ph-test-{part}-{token}"
        for variable, part in (
            ("PARTYHELP_MYSQL_SSL_CA_BLOCK", "ca"),
            ("PARTYHELP_MYSQL_SSL_CERT_BLOCK", "cert"),
            ("PARTYHELP_MYSQL_SSL_KEY_BLOCK", "key"),
        )
    }
    files = (pki.ca, pki.client_cert, pki.client_key)
    try:
        for name, path in zip(names.values(), files, strict=True):
            Secret(value=SecretStr(path.read_text())).save(name)
        yield names
    finally:
        for name in names.values():
            with contextlib.suppress(Exception):
                Secret.delete(name)


def test_ca_certificate_and_key_from_secret_blocks(
    server: TlsMariaDB, pki: Pki, pem_blocks: dict[str, str]
) -> None:
    env = {
        **_tls_env(server, pki),
        **pem_blocks,
        "PARTYHELP_MYSQL_USER": CERT_USER,
        "PARTYHELP_MYSQL_PASSWORD": READER_PASSWORD,
        "PARTYHELP_MYSQL_DATABASE": DATABASE,
        "PARTYHELP_MYSQL_SSL_CA": str(pki.other_ca),  # the block wins over the path
        "PARTYHELP_GCS_BUCKET": "ph-unused",
        "PARTYHELP_BQ_PROJECT": "partyhelp-test",
    }
    with environment(env) as settings:
        files = (settings.mysql.ssl_ca, settings.mysql.ssl_cert, settings.mysql.ssl_key)
        for path, source in zip(files, (pki.ca, pki.client_cert, pki.client_key), strict=True):
            assert path is not None and Path(path).read_text() == source.read_text()
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        for driver in DRIVERS:
            user, cipher = session(dataclasses.replace(settings.mysql, driver=driver))
            assert (user, bool(cipher)) == (f"{CERT_USER}@%", True), driver
            without = dataclasses.replace(
                settings.mysql, driver=driver, ssl_cert=None, ssl_key=None
            )
            assert "error 1045" in str(refused(without))  # REQUIRE X509 wants the cert
    _assert_removed_at_exit(env)


def _assert_removed_at_exit(env: dict[str, str]) -> None:
    """Another process reads the settings as a task does; its PEM files go when it ends."""
    script = (
        "from tasks.options import runtime_settings as r; s = r().mysql; "
        "print(s.ssl_ca, s.ssl_cert, s.ssl_key)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=True,
    )
    paths = done.stdout.split()
    assert len(paths) == 3 and all(p.startswith("/") for p in paths), done.stdout
    assert not any(Path(p).exists() for p in paths)
