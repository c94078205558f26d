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

from tasks.errors import SchemaDriftError, SourceUnavailableError
from tasks.settings import MySQLSettings
from tasks.specs import NUMERIC_SCALE, TableSpec, max_decimal_integer_digits

# MySQL client error codes that mean "the connection, not the query, failed".
TRANSIENT_MYSQL_ERRORS = frozenset(
    {
        1040,  # too many connections
        1053,  # server shutdown in progress
        1205,  # lock wait timeout
        1213,  # deadlock
        1317,  # query interrupted: KILL QUERY by a DBA or a long-query killer
        1412,  # table definition changed since the snapshot began (a migration mid-run)
        1927,  # connection killed (MariaDB)
        2002,  # can't connect through socket
        2003,  # can't connect to server
        2006,  # server has gone away
        2013,  # lost connection during query
        2055,  # lost connection at reading
        4031,  # disconnected by the server for inactivity (MySQL 8)
    }
)


_INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "bigint"})
# Source types (information_schema DATA_TYPE) whose values each wire form carries exactly
# (sql/source/README.md). Integers of any width are checked row by row against int64;
# DECIMAL's precision and scale are checked below. DATETIME is not a TIMESTAMP: its
# UNIX_TIMESTAMP is NULL after 2038 and 0 before 1970, and a DATE read as DATETIME + 0 is
# no longer YYYYMMDD, so such a change fails here instead of turning values into NULL.
WIRE_SOURCE_TYPES: dict[str, frozenset[str]] = {
    "INT64": _INTEGER_TYPES,
    "NUMERIC": _INTEGER_TYPES | {"decimal"},
    "FLOAT64": _INTEGER_TYPES | {"decimal", "float", "double"},
    "DATE": frozenset({"date"}),
    "TIMESTAMP": frozenset({"timestamp"}),
    "STRING": frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext",
                         "json", "enum", "set"}),
}


def _driver_module(driver: str) -> Any:
    if driver == "mysqlclient":
        import MySQLdb

        return MySQLdb
    import pymysql

    return pymysql


def mysql_error_code(exc: BaseException) -> int | None:
    """The MySQL error code of a driver exception, if it has one."""
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


def is_driver_error(exc: BaseException) -> bool:
    """True for a DB-API error of either driver."""
    module = type(exc).__module__
    return module.startswith(("pymysql", "MySQLdb", "_mysql"))


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
            transient=code in TRANSIENT_MYSQL_ERRORS,
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


def id_bounds(connection: Any, source_table: str) -> IdRange | None:
    """MIN and MAX of ``id`` (from the primary key index), or None for an empty table."""
    # The table name comes from our own specs, checked against information_schema first.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT MIN(id), MAX(id) FROM `{source_table}`")
        low, high = cursor.fetchone()
    if low is None:
        return None
    return IdRange(int(low), int(high))


def plan_chunks(connection: Any, source_table: str, chunk_rows: int) -> tuple[tuple[int, int], ...]:
    """Split the table's ids into consecutive ranges of about ``chunk_rows`` rows each.

    Boundaries come from walking the primary-key index (one pass over it in all), so a
    range holds rows, not just ids: gaps in the ids (deleted rows, legacy ids far above the
    rest) make no empty chunks. The last range ends at the largest id now; rows added
    later belong to tomorrow's run. An empty table gets one empty range, so every export
    has at least one (empty) part.
    """
    bounds = id_bounds(connection, source_table)
    if bounds is None:
        return ((0, -1),)
    ranges: list[tuple[int, int]] = []
    first = bounds.first_id
    with connection.cursor() as cursor:
        while True:
            cursor.execute(
                f"SELECT MAX(id) FROM (SELECT id FROM `{source_table}` WHERE id >= %(first)s "
                "ORDER BY id LIMIT %(rows)s) AS chunk",
                {"first": first, "rows": chunk_rows},
            )
            (last,) = cursor.fetchone()
            if last is None or int(last) >= bounds.last_id:
                ranges.append((first, bounds.last_id))
                return tuple(ranges)
            ranges.append((first, int(last)))
            first = int(last) + 1


@dataclass(frozen=True)
class SourceColumn:
    """What information_schema says of one column."""

    table: str
    column: str
    data_type: str
    numeric_precision: int | None
    numeric_scale: int | None


def describe_source(connection: Any, database: str) -> dict[tuple[str, str], SourceColumn]:
    """Every column of the source database, keyed by ``(table, column)`` in lower case."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE "
            "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %(schema)s",
            {"schema": database},
        )
        rows = cursor.fetchall()
    return {
        (str(t).lower(), str(c).lower()): SourceColumn(str(t), str(c), str(d).lower(), p, s)
        for t, c, d, p, s in rows
    }


def check_schema(spec: TableSpec, source: Mapping[tuple[str, str], SourceColumn]) -> None:
    """Fail before anything is written when a column the spec reads is gone or too wide."""
    raise_drift(schema_problems(spec, source))


def raise_drift(problems: list[tuple[str, str, str]]) -> None:
    """One ``SchemaDriftError`` naming every ``(table, column, message)`` problem, if any."""
    if problems:
        table, column, _ = problems[0]
        raise SchemaDriftError("; ".join(message for _, _, message in problems),
                               table=table, column=column)


def schema_problems(spec: TableSpec, source: Mapping[tuple[str, str], SourceColumn]
                    ) -> list[tuple[str, str, str]]:
    """Every drift of the source that ``spec`` cannot export exactly: (table, column, why).

    An added column changes nothing; a renamed or dropped one is named; a type that its
    wire form cannot carry exactly (``WIRE_SOURCE_TYPES``), or a DECIMAL that our exact
    money encoding cannot hold, is refused rather than rounded or nulled. All are listed,
    so that one failed run shows the whole of a migration.
    """
    problems: list[tuple[str, str, str]] = []
    missing = sorted(
        f"{table}.{column}"
        for table, column in spec.source_columns
        if (table.lower(), column.lower()) not in source
    )
    if missing:
        problems.append((spec.name, missing[0],
                         f"{spec.name}: source column {', '.join(missing)} is missing "
                         "(renamed or dropped in the source database?)"))
    for (table, column), wire in sorted(spec.source_wire_types.items()):
        info = source.get((table.lower(), column.lower()))
        if info is not None and info.data_type not in WIRE_SOURCE_TYPES[wire]:
            problems.append((spec.name, f"{table}.{column}",
                             f"{spec.name}: source column {table}.{column} is now "
                             f"{info.data_type.upper()}; it is read as {wire}, which holds "
                             "exactly only "
                             f"{', '.join(sorted(t.upper() for t in WIRE_SOURCE_TYPES[wire]))}"))
    for (table, column), wire in sorted(spec.source_wire_types.items()):
        info = source.get((table.lower(), column.lower()))
        # Only money travels as exact cents; a DECIMAL read as FLOAT64 (match_score) is a
        # double by contract, whatever its scale.
        if info is None or info.data_type != "decimal" or wire != "NUMERIC":
            continue
        scale = info.numeric_scale or 0
        integer_digits = (info.numeric_precision or 0) - scale
        if scale > NUMERIC_SCALE or integer_digits > max_decimal_integer_digits:
            problems.append((spec.name, f"{table}.{column}",
                             f"{spec.name}: source column {table}.{column} is DECIMAL("
                             f"{info.numeric_precision},{scale}); the export holds at most "
                             f"{max_decimal_integer_digits} integer digits and {NUMERIC_SCALE} "
                             "decimals exactly, and refuses to round"))
    return problems


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
