"""Read-only access to the Partyhelp MySQL/MariaDB database.

Every read happens in a ``REPEATABLE READ`` transaction started ``WITH CONSISTENT
SNAPSHOT``, at session time zone ``+00:00``, and streams rows through a server-side
cursor. Two drivers are supported: mysqlclient (C, the fast default) and PyMySQL
(pure Python); both return the same Python values for our wire-format queries.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from partyhelp_pipeline.errors import (
    SourceUnavailableError,
    is_transient_mysql_error,
    mysql_error_code,
)
from partyhelp_pipeline.settings import MySQLSettings


def _driver_module(driver: str) -> Any:
    if driver == "mysqlclient":
        import MySQLdb

        return MySQLdb
    import pymysql

    return pymysql


def connect(settings: MySQLSettings) -> Any:
    """Open a connection at ``+00:00``; failures name host and port, never the password."""
    module = _driver_module(settings.driver)
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
        connection = module.connect(**kwargs)
    except module.Error as exc:
        code = mysql_error_code(exc)
        # The server's reason ("Can't connect ...", "Access denied ...") never holds the
        # password; it is masked all the same, in case a driver ever echoed it.
        reason = str(exc.args[-1]) if len(exc.args) > 1 else ""
        if settings.password.get_secret_value():
            reason = reason.replace(settings.password.get_secret_value(), "***")
        raise SourceUnavailableError(
            f"cannot connect to MySQL at {settings.host}:{settings.port} as {settings.user}: "
            f"error {code}" + (f": {reason}" if reason else ""),
            transient=is_transient_mysql_error(exc),
        ) from None
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
            cursor.execute("SET SESSION net_write_timeout = %(seconds)s",
                           {"seconds": STREAM_WRITE_TIMEOUT_SECONDS})
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
        cursor.execute(f"SELECT MIN({key}), MAX({key}) FROM `{table}`")
        low, high = cursor.fetchone()
    if low is None:
        return None
    return IdRange(int(low), int(high))


def plan_chunks(connection: Any, table: str, chunk_rows: int,
                key: str = "id") -> tuple[tuple[int, int], ...]:
    """Split the table's ids into consecutive ranges of about ``chunk_rows`` rows each.

    Boundaries come from walking the primary-key index (one pass over it in all), so a
    range holds rows, not just ids: gaps in the ids (deleted rows, legacy ids far above the
    rest) make no empty chunks. The last range ends at the largest id now; rows added
    later belong to tomorrow's run. An empty table gets one empty range, so every export
    has at least one (empty) part.
    """
    bounds = id_bounds(connection, table, key)
    if bounds is None:
        return ((0, -1),)
    ranges: list[tuple[int, int]] = []
    first = bounds.first_id
    with connection.cursor() as cursor:
        while True:
            cursor.execute(
                f"SELECT MAX({key}) FROM (SELECT {key} FROM `{table}` WHERE {key} >= %(first)s "
                f"ORDER BY {key} LIMIT %(rows)s) AS chunk",
                {"first": first, "rows": chunk_rows},
            )
            (last,) = cursor.fetchone()
            if last is None or int(last) >= bounds.last_id:
                ranges.append((first, bounds.last_id))
                return tuple(ranges)
            ranges.append((first, int(last)))
            first = int(last) + 1


def stream_rows(
    connection: Any, driver: str, sql: str, params: Mapping[str, Any],
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
