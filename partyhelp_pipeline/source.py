"""Read-only access to the Partyhelp MySQL/MariaDB database.

Every read happens in a ``REPEATABLE READ`` transaction started ``WITH CONSISTENT
SNAPSHOT``, at session time zone ``+00:00``, and streams rows through a server-side
cursor. Two drivers are supported: mysqlclient (C, fast: the package's ``[fast]`` extra)
and PyMySQL (pure Python, always installed); both return the same Python values for our
wire-format queries. ``PARTYHELP_MYSQL_DRIVER=auto`` (the default) takes mysqlclient when it
imports, and the run's log says which one reads.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from partyhelp_pipeline.errors import (
    SourceUnavailableError,
    is_tls_failure,
    is_transient_mysql_error,
    mysql_error_code,
)
from partyhelp_pipeline.logs import get_logger, prefect_loaded
from partyhelp_pipeline.settings import (
    ConfigError,
    DriverChoice,
    MySQLSettings,
    c_driver_imports,
    chosen_driver,
)

DISTRIBUTION = "partyhelp-bigquery-sync"  # pyproject.toml's project name
# The extra that installs each driver, and how the log names it.
DRIVER_EXTRAS = {"mysqlclient": "fast", "pymysql": ""}
DRIVER_NAMES = {"mysqlclient": "mysqlclient (C)", "pymysql": "PyMySQL (pure Python)"}
_announced: set[str] = set()  # flow runs (or "" outside one) whose log names the driver
_announced_lock = threading.Lock()  # tasks on threads connect at once


def install_hint(extra: str) -> str:
    """The command that installs the package's ``extra``, quoted for a shell."""
    return f"pip install '{DISTRIBUTION}[{extra}]'" if extra else f"pip install {DISTRIBUTION}"


def _driver_module(choice: str) -> Any:
    """The DB-API module of the driver that ``choice`` means here (see ``chosen_driver``);
    a named driver that is not installed fails in one line naming the extra."""
    driver = chosen_driver(cast(DriverChoice, choice))  # a name from MySQLSettings
    if driver == "mysqlclient":
        if not c_driver_imports():
            raise ConfigError(
                f"PARTYHELP_MYSQL_DRIVER=mysqlclient, but mysqlclient (module MySQLdb) is not "
                f"installed: {install_hint('fast')}, or set PARTYHELP_MYSQL_DRIVER=auto to "
                f"read with PyMySQL"
            )
        import MySQLdb

        return MySQLdb
    import pymysql

    return pymysql


def _run_key() -> str:
    """The current flow run's id ("" outside a run): the driver is named once per run."""
    if not prefect_loaded():
        return ""
    try:
        from prefect.runtime import flow_run

        return str(flow_run.get_id() or "")
    except Exception:  # Prefect's context is a convenience here, never a failure
        return ""


def announce_driver(driver: str) -> None:
    """Log, once per flow run (once per process outside a run), which driver reads MySQL,
    and when PyMySQL reads because mysqlclient is missing, how to get the faster one."""
    key = _run_key()
    with _announced_lock:
        if key in _announced:
            return
        _announced.add(key)
    why = (
        ""
        if driver == "mysqlclient" or c_driver_imports()
        else (f"; mysqlclient, the faster C driver, is not installed ({install_hint('fast')})")
    )
    get_logger().info("MySQL driver: %s%s", DRIVER_NAMES.get(driver, driver), why)


# ------------------------------------------------------------------------- TLS
#
# PARTYHELP_MYSQL_SSL_MODE takes MySQL's names. What each mode asks of the drivers:
#   disabled         no TLS
#   preferred        TLS when the server offers it, else plain; the certificate is not checked
#   required         TLS or no connection; the certificate is not checked
#   verify_ca        and the certificate is signed by the CA (the system's CAs without one)
#   verify_identity  and it names the host connected to
# mysqlclient here is built on MariaDB Connector/C, which has no MYSQL_OPT_SSL_MODE:
# mysqlclient maps the mode onto "enforce TLS" and "verify the certificate", and the latter
# always checks the host name too, so verify_ca is as strict as verify_identity there.

ENCRYPTED_MODES = ("required", "verify_ca", "verify_identity")
ACCESS_DENIED = 1045
# With no TLS option at all, Connector/C never starts TLS; OpenSSL's default cipher list is
# an option that asks for TLS and changes nothing else.
_ASK_FOR_TLS = {"cipher": "DEFAULT"}
# Connector/C takes host "localhost" to mean its default Unix socket, ignoring the port (and
# so skipping TLS); the settings mean host:port over TCP, as PyMySQL does. Option files are
# the only way mysqlclient lets us set the protocol (1 = MYSQL_PROTOCOL_TCP).
_TCP_OPTION_FILE = "[client]\nprotocol=1\n"
_private_files: dict[str, str] = {}  # digest of a text -> the file holding it
_private_lock = threading.Lock()  # tasks on threads connect at once


def private_file(text: str, suffix: str) -> str:
    """A file holding ``text``, readable by this user only (``mkstemp`` makes it 0600): one
    per distinct text and process, made again if a temp-file cleaner removed it, removed at
    exit. The drivers read option files and TLS material (PEM) only from files."""
    key = hashlib.sha256(text.encode()).hexdigest() + suffix
    with _private_lock:
        path = _private_files.get(key)
        if path is None or not os.path.exists(path):
            handle, path = tempfile.mkstemp(prefix="partyhelp-", suffix=suffix)
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            atexit.register(_remove_file, path)
            _private_files[key] = path
        return path


def _remove_file(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


def _mysqlclient_tls(settings: MySQLSettings) -> dict[str, Any]:
    """mysqlclient's ``ssl_mode`` and ``ssl`` arguments for ``settings.ssl_mode``."""
    options: dict[str, Any] = {"ssl_mode": settings.ssl_mode.upper()}
    if settings.host == "localhost":
        options.update(
            read_default_file=private_file(_TCP_OPTION_FILE, ".cnf"), read_default_group="client"
        )
    if settings.ssl_mode == "disabled":
        return options  # any TLS file would make Connector/C try TLS
    files = {"cert": settings.ssl_cert, "key": settings.ssl_key}
    if settings.ssl_mode.startswith("verify"):
        files["ca"] = settings.ssl_ca  # with a CA, Connector/C checks the chain in any mode
    options["ssl"] = {name: path for name, path in files.items() if path} or _ASK_FOR_TLS
    return options


def tls_context(settings: MySQLSettings) -> ssl.SSLContext:
    """The TLS context of a PyMySQL connection in ``settings.ssl_mode`` (not disabled)."""
    verify = settings.ssl_mode.startswith("verify")
    try:
        context = ssl.create_default_context(cafile=settings.ssl_ca if verify else None)
        if settings.ssl_cert:
            context.load_cert_chain(settings.ssl_cert, settings.ssl_key)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise SourceUnavailableError(
            f"TLS to MySQL at {settings.host}:{settings.port}: cannot read the CA, "
            f"certificate or key (PARTYHELP_MYSQL_SSL_CA, _CERT, _KEY): {exc}",
            transient=False,
        ) from None
    context.check_hostname = settings.ssl_mode == "verify_identity"
    if not verify:
        context.verify_mode = ssl.CERT_NONE
    return context


def _open(module: Any, settings: MySQLSettings, kwargs: dict[str, Any]) -> Any:
    """A driver connection in the TLS mode of ``settings``."""
    if settings.driver == "mysqlclient":
        return module.connect(**kwargs, **_mysqlclient_tls(settings))
    if settings.ssl_mode == "disabled":
        return module.connect(**kwargs, ssl_disabled=True)
    if settings.ssl_mode != "preferred":
        return module.connect(**kwargs, ssl=tls_context(settings))  # TLS or an error
    # Without TLS options PyMySQL prefers TLS and falls back to plain, as MySQL's client
    # does; a client certificate goes into that same context, before it connects.
    connection = module.connect(**kwargs, defer_connect=True)
    if settings.ssl_cert:
        connection.ctx = tls_context(settings)
    connection.connect()
    return connection


def session_cipher(connection: Any) -> str:
    """The TLS cipher of the connection's session, or "" when it is not encrypted."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        row = cursor.fetchone()
    return str(row[1] or "") if row else ""


# ------------------------------------------------------------------------- connecting


def _connect_error(settings: MySQLSettings, exc: BaseException) -> SourceUnavailableError:
    """One line naming host, port, user and, for a TLS failure, TLS; never the password."""
    code = mysql_error_code(exc)
    # The server's reason ("Can't connect ...", "Access denied ...") never holds the
    # password; it is masked all the same, in case a driver ever echoed it.
    reason = str(exc.args[-1]) if len(exc.args) > 1 else ""
    cause = getattr(exc, "original_exception", None)
    tls = is_tls_failure(exc)
    if tls and isinstance(cause, ssl.SSLError):  # PyMySQL: the check that failed, alone
        reason = getattr(cause, "verify_message", None) or cause.reason or str(cause)
    if settings.password.get_secret_value():
        reason = reason.replace(settings.password.get_secret_value(), "***")
    where = f"MySQL at {settings.host}:{settings.port} as {settings.user}"
    mode = f"PARTYHELP_MYSQL_SSL_MODE={settings.ssl_mode}"
    if tls:
        message = f"TLS to {where} failed ({mode}): {reason.rstrip('.')}"
        # A failed check, not a server without TLS ("... does not support it"): say what
        # to check.
        if settings.ssl_mode.startswith("verify") and "support" not in reason:
            message += (
                f"; check that PARTYHELP_MYSQL_SSL_CA holds the CA of the server's "
                f"certificate and that the certificate names {settings.host!r}"
            )
    else:
        message = f"cannot connect to {where}: error {code}" + (f": {reason}" if reason else "")
        if settings.ssl_mode == "disabled" and code == ACCESS_DENIED:
            message += f" ({mode}: if the user was created REQUIRE SSL, it needs TLS)"
        message += _what_to_do(settings, code)
    return SourceUnavailableError(
        " ".join(message.split()),  # one line
        transient=is_transient_mysql_error(exc),
    )


# The client's codes of a server that did not answer: no socket, refused, unknown host,
# lost during the handshake.
UNANSWERED_CONNECT = frozenset({2002, 2003, 2005, 2013})


def _what_to_do(settings: MySQLSettings, code: int | None) -> str:
    """The fix of a refused login (the user, and the setting or Secret block its password
    came from) or of a server that did not answer; "" for other errors."""
    if code == ACCESS_DENIED:
        where = (
            f"the Secret block {settings.password_block!r} (PARTYHELP_MYSQL_PASSWORD_BLOCK)"
            if settings.password_block
            else "PARTYHELP_MYSQL_PASSWORD"
        )
        return (
            f"; the password of {settings.user} was read from {where}: put the user's "
            f"right password there (or let {settings.user} connect from this host)"
        )
    if code in UNANSWERED_CONNECT:
        return (
            "; is MySQL running there, and are PARTYHELP_MYSQL_HOST and "
            "PARTYHELP_MYSQL_PORT right? (the local stack: scripts/stack.sh status)"
        )
    return ""


def _refuse_plain(connection: Any, settings: MySQLSettings) -> None:
    """In a mode that requires TLS, fail unless the session really is encrypted:
    Connector/C's "enforce" lets a server without TLS answer in plain."""
    if settings.ssl_mode in ENCRYPTED_MODES and not session_cipher(connection):
        with contextlib.suppress(Exception):
            connection.close()
        raise SourceUnavailableError(
            f"TLS to MySQL at {settings.host}:{settings.port} as {settings.user} failed "
            f"(PARTYHELP_MYSQL_SSL_MODE={settings.ssl_mode}): the server offers no TLS",
            transient=False,
        )


def connect(settings: MySQLSettings) -> Any:
    """Open a connection at ``+00:00``, over TLS as ``settings.ssl_mode`` says; failures
    name host and port (and TLS, when TLS failed), never the password."""
    module = _driver_module(settings.driver)
    announce_driver(chosen_driver(settings.driver))
    kwargs: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "user": settings.user,
        "password": settings.password.get_secret_value(),
        "database": settings.database,
        "charset": "utf8mb4",
        "connect_timeout": settings.connect_timeout,
        "autocommit": False,
    }
    if settings.driver == "mysqlclient":
        kwargs["passwd"] = kwargs.pop("password")
        kwargs["db"] = kwargs.pop("database")
    try:
        connection = _open(module, settings, kwargs)
    except module.Error as exc:
        raise _connect_error(settings, exc) from None
    _refuse_plain(connection, settings)
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION time_zone = '+00:00'")
    return connection


STREAM_WRITE_TIMEOUT_SECONDS = 600
# A server-wide limit on statement time (MariaDB's max_statement_time, MySQL's
# max_execution_time) would interrupt a stream of a large table that legitimately runs for
# minutes (error 1969). Each server knows only its own variable: the other is unknown (1193).
STATEMENT_TIME_LIMITS = ("max_statement_time", "max_execution_time")
UNKNOWN_SYSTEM_VARIABLE = 1193


def _lift_statement_time_limit(cursor: Any) -> None:
    for variable in STATEMENT_TIME_LIMITS:
        try:
            cursor.execute(f"SET SESSION {variable} = 0")  # our own constant, not input
            return
        except Exception as exc:
            if mysql_error_code(exc) != UNKNOWN_SYSTEM_VARIABLE:
                raise


@contextlib.contextmanager
def snapshot(settings: MySQLSettings) -> Iterator[Any]:
    """A connection inside one consistent, read-only snapshot, closed afterwards."""
    connection = connect(settings)
    try:
        with connection.cursor() as cursor:
            # The server drops a stream whose client has not read for net_write_timeout
            # (60 s by default); a busy client may pause that long on a slow machine.
            cursor.execute(
                "SET SESSION net_write_timeout = %(seconds)s",
                {"seconds": STREAM_WRITE_TIMEOUT_SECONDS},
            )
            _lift_statement_time_limit(cursor)
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        yield connection
    finally:
        with contextlib.suppress(Exception):
            connection.rollback()
        with contextlib.suppress(Exception):
            connection.close()


def server_cursor(connection: Any, driver: str) -> Any:
    """An unbuffered cursor: rows stream from the server instead of being held whole."""
    return connection.cursor(_driver_module(driver).cursors.SSCursor)  # same name in both


def fetch_one(connection: Any, sql: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Run a one-row query and return it as a dict."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [d[0] for d in cursor.description]
        row = cursor.fetchone()
    return dict(zip(names, row or (None,) * len(names), strict=True))


@dataclass(frozen=True)
class IdRange:
    """The inclusive primary-key range ``first_id..last_id`` of a driving table."""

    first_id: int
    last_id: int


def id_bounds(connection: Any, table: str, key: str = "id") -> IdRange | None:
    """MIN and MAX of a table's key (from its index), or None for an empty table."""
    # Names come from our own specs (a key is a plain identifier), checked against
    # information_schema first.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT MIN(`{key}`), MAX(`{key}`) FROM `{table}`")
        low, high = cursor.fetchone()
    if low is None:
        return None
    return IdRange(int(low), int(high))


def plan_chunks(
    connection: Any, table: str, chunk_rows: int, key: str = "id"
) -> tuple[tuple[int, int], ...]:
    """Split the table's ids into consecutive ranges of ``chunk_rows`` ids each.

    Planning costs one index probe per boundary (``MIN(key) WHERE key > boundary``), never
    a walk of the table: with an auto-increment key a span of ``chunk_rows`` ids holds at
    most that many rows. Each range after the first starts right after the one before (so
    the ranges cover every id from the smallest to the largest, rows inserted into a gap
    later included) and spans ``chunk_rows`` ids from the first id that exists there: gaps
    (deleted rows, legacy ids far above the rest) make no empty chunks. The last range ends
    at the largest id now; rows added above it belong to tomorrow's run. An empty table gets
    one empty range, so every export has at least one (empty) part.
    """
    bounds = id_bounds(connection, table, key)
    if bounds is None:
        return ((0, -1),)
    ranges: list[tuple[int, int]] = []
    first = next_id = bounds.first_id
    with connection.cursor() as cursor:
        while next_id + chunk_rows - 1 < bounds.last_id:
            last = next_id + chunk_rows - 1
            ranges.append((first, last))
            first = last + 1
            # Names come from our own specs (checked against information_schema first).
            cursor.execute(
                f"SELECT MIN(`{key}`) FROM `{table}` WHERE `{key}` > %(last)s", {"last": last}
            )
            (found,) = cursor.fetchone()
            next_id = bounds.last_id if found is None else int(found)
    ranges.append((first, bounds.last_id))
    return tuple(ranges)


def stream_rows(
    connection: Any,
    driver: str,
    sql: str,
    params: Mapping[str, Any],
    batch_rows: int | Callable[[], int],
) -> Iterator[tuple[Sequence[str], Sequence[tuple[Any, ...]]]]:
    """Yield ``(column names, rows)`` batches from an unbuffered cursor.

    ``batch_rows`` may be a callable, asked before each fetch: the export sizes its
    batches by bytes, so wide rows come in fewer at a time.
    """
    next_size = batch_rows if callable(batch_rows) else lambda: batch_rows
    cursor = server_cursor(connection, driver)
    try:
        cursor.execute(sql, params)
        names = [d[0] for d in cursor.description]
        while True:
            rows = cursor.fetchmany(max(1, next_size()))
            if not rows:
                break
            yield names, rows
    finally:
        with contextlib.suppress(Exception):
            cursor.close()
