"""The sync's errors, and the one rule that decides which failures are worth a retry.

This module imports nothing of the project: every stage may raise these errors. The MySQL
error codes that a retry can heal are classified here, once, for every caller.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core.retry import if_exception_type, if_transient_error

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


def mysql_error_code(exc: BaseException) -> int | None:
    """The MySQL error code of a driver exception, if it has one."""
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


def is_driver_error(exc: BaseException) -> bool:
    """True for a DB-API error of either driver (mysqlclient or PyMySQL)."""
    return type(exc).__module__.startswith(("pymysql", "MySQLdb", "_mysql"))


# "SSL connection error": the TLS handshake or one of its checks failed (both drivers).
SSL_CONNECTION_ERROR = 2026
CANNOT_CONNECT = 2003
# A handshake cut by the network, not refused by a check: a retry can heal it.
_TLS_CONNECTION_LOST = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)


def is_tls_failure(exc: BaseException) -> bool:
    """Whether a driver error is a failed TLS handshake or check: an unknown CA, a host name
    not in the server's certificate, a server without TLS when TLS is required.

    mysqlclient reports these as error 2026. PyMySQL reports a failed handshake as 2003,
    "can't connect", with the ``ssl.SSLError`` it caught as ``original_exception``.
    """
    code = mysql_error_code(exc)
    if code == SSL_CONNECTION_ERROR:
        return True
    cause = getattr(exc, "original_exception", None)
    return (
        code == CANNOT_CONNECT
        and isinstance(cause, ssl.SSLError)
        and not isinstance(cause, _TLS_CONNECTION_LOST)
    )


def is_transient_mysql_error(exc: BaseException) -> bool:
    """Whether a driver error is a lost or refused connection that a retry can heal.
    A failed TLS check is not: a retry meets the same certificate."""
    return mysql_error_code(exc) in TRANSIENT_MYSQL_ERRORS and not is_tls_failure(exc)


class SyncError(Exception):
    """A failure of the sync; ``transient`` says whether a retry can heal it."""

    transient: bool = False

    def __init__(
        self,
        message: str,
        *,
        transient: bool | None = None,
        table: str | None = None,
        column: str | None = None,
        row_id: int | None = None,
    ) -> None:
        super().__init__(message)
        if transient is not None:
            self.transient = transient
        self.table = table
        self.column = column
        self.row_id = row_id


class SourceUnavailableError(SyncError):
    """MySQL cannot be reached or the connection was lost."""

    transient = True


class StorageUnavailableError(SyncError):
    """GCS could not be reached, or kept failing, for as long as the client retries."""

    transient = True


class SchemaDriftError(SyncError):
    """The source no longer has a column that a spec reads, or its type cannot be held."""


class BadDataError(SyncError):
    """A source value cannot be exported exactly; names the table, column and row id."""


class ExportIntegrityError(SyncError):
    """An export in GCS is incomplete or does not match its manifest."""


class DamagedExportError(ExportIntegrityError):
    """A part that a committed manifest lists is missing from GCS or no longer matches it:
    the export was whole when committed and has been damaged since, so it can be redone."""


class SyncFailed(SyncError):
    """One or more tables failed; the message names each with its cause."""


class BackfillIncomplete(SyncFailed):
    """Some days of a backfill were not done: the message names each with why; ``results``
    holds every day's outcome (the command prints them)."""

    def __init__(self, message: str, results: dict[str, str]) -> None:
        super().__init__(message)
        self.results = results

    def __reduce__(self) -> tuple[Any, ...]:  # pickled with its results, as Prefect keeps it
        return type(self), (str(self), self.results)


class ReconciliationError(SyncError):
    """What BigQuery holds differs from what the source held."""


class PreflightError(SyncError):
    """Something the run needs is missing or misconfigured (a bucket, a dataset's location):
    no retry heals it, an operator does."""


class ServiceUnreachableError(SyncError):
    """A service (BigQuery, GCS) did not answer for a whole retry window: no task retry
    heals that (the client has already retried for the window), an operator does. The
    message is the one sentence a person reads (service, address, window, why, what to do);
    ``detail`` keeps the library's own text, for ``--verbose``."""

    def __init__(self, message: str, *, service: str = "", detail: str = "") -> None:
        super().__init__(message, transient=False)
        self.service = service
        self.detail = detail


class RowDropError(SyncError):
    """A table's rows fell further below its last published count than allowed: a source
    accident (a truncated table, a bad migration) is not published."""


class StaleSourceError(SyncError):
    """A table's newest source row is older than its ``error_after``: a stale replica, or an
    app that stopped writing, is not published."""


class LoadError(SyncError):
    """A BigQuery load job failed."""


# Google API errors that a retry can heal: google-api-core's own transient errors (500, 429,
# 503, a lost connection: ``if_transient_error``) and the other answers of an overloaded or
# unreachable front end (502, 504 and a deadline exceeded).
_TRANSIENT_GOOGLE_ERROR = (
    if_transient_error,
    if_exception_type(gexc.BadGateway, gexc.GatewayTimeout),
)
_REQUEST_TIMEOUT = 408  # google-api-core has no class of its own for it
# BigQuery's error reasons that a retry can heal, of a request (backendError, ...) or of a
# job BigQuery itself failed (jobBackendError, ...): a request's or a job's ``errors`` list
# them, whatever HTTP status the exception maps them to (rateLimitExceeded is a 403).
TRANSIENT_BIGQUERY_REASONS = frozenset(
    {
        "backendError",
        "rateLimitExceeded",
        "internalError",
        "jobBackendError",
        "jobInternalError",
        "badGateway",
        "jobRateLimitExceeded",
    }
)


def has_transient_bigquery_reason(exc: BaseException) -> bool:
    """Whether one of the exception's BigQuery ``errors`` has a reason a retry can heal."""
    return any(
        isinstance(error, dict) and error.get("reason") in TRANSIENT_BIGQUERY_REASONS
        for error in getattr(exc, "errors", None) or ()
    )


def is_transient_google_error(exc: BaseException) -> bool:
    """Whether a Google client error is one a retry can heal (``_TRANSIENT_GOOGLE_ERROR``,
    a request timeout, a transient BigQuery reason)."""
    if isinstance(exc, Exception) and any(rule(exc) for rule in _TRANSIENT_GOOGLE_ERROR):
        return True
    if isinstance(exc, gexc.GoogleAPICallError) and exc.code == _REQUEST_TIMEOUT:
        return True
    return has_transient_bigquery_reason(exc)


# Concurrent jobs on one table or catalog: BigQuery's "could not serialize access ... due to
# concurrent update", and the DuckDB-backed emulator's "write-write conflict" and "Failed to
# commit DuckLake transaction" (its optimistic catalog commits). A retry heals all of them.
_CONCURRENCY_CONFLICT = re.compile(
    r"concurrent update|could not serialize access|write-write conflict"
    r"|failed to commit ducklake transaction",
    re.IGNORECASE,
)


def module_is_google(exc: BaseException) -> bool:
    """True for errors raised by the Google client libraries."""
    return type(exc).__module__.startswith("google.")


def is_transient(exc: BaseException) -> bool:
    """Whether a retry can heal ``exc``: a lost connection, a 5xx or a rate limit (Google's
    by ``is_transient_google_error``), a concurrent update, a lost MySQL connection."""
    if isinstance(exc, SyncError):
        return exc.transient
    if isinstance(
        exc,
        (ConnectionError, TimeoutError, socket.timeout, ssl.SSLError, http.client.HTTPException),
    ):
        return True
    if is_transient_google_error(exc):
        return True
    if module_is_google(exc) and _CONCURRENCY_CONFLICT.search(str(exc)):
        return True
    module = type(exc).__module__
    if module.startswith(("requests", "urllib3", "google.auth.exceptions")):
        return (
            "TransportError" in type(exc).__name__
            or "Connection" in type(exc).__name__
            or "Timeout" in type(exc).__name__
        )
    if is_driver_error(exc):
        return is_transient_mysql_error(exc)
    cause = exc.__cause__ or exc.__context__
    return cause is not None and cause is not exc and is_transient(cause)


def export_source_error(exc: BaseException, table: str) -> BaseException:
    """A driver error raised while exporting ``table``, as the sync's own error (retried
    when transient); any other exception unchanged."""
    if not is_driver_error(exc):
        return exc
    transient = is_transient_mysql_error(exc)
    kind = SourceUnavailableError if transient else ExportIntegrityError
    return kind(
        f"{table}: MySQL error {mysql_error_code(exc)} while exporting: {exc.args[-1]}",
        transient=transient,
        table=table,
    )


# What a failure says when nothing answered: the reason it is shown as, and the texts of the
# libraries (requests, urllib3, http.client, the socket) that mean it. An HTTP answer (a 5xx,
# a 429) is not among them: that server did answer.
_UNANSWERED = (
    (
        "connection refused",
        re.compile(r"connection refused|ConnectionRefusedError|errno 111\b", re.IGNORECASE),
    ),
    (
        "timed out",
        re.compile(r"timed out|ReadTimeout|ConnectTimeout|socket\.timeout", re.IGNORECASE),
    ),
    (
        "host not found",
        re.compile(
            r"Name or service not known|NameResolutionError|"
            r"Temporary failure in name resolution|nodename nor servname",
            re.IGNORECASE,
        ),
    ),
    (
        "connection reset",
        re.compile(
            r"Connection reset|Connection aborted|RemoteDisconnected|"
            r"ConnectionResetError",
            re.IGNORECASE,
        ),
    ),
)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps: a RetryError's last exception, causes and contexts."""
    found: list[BaseException] = []
    queue: list[BaseException | None] = [exc]
    while queue and len(found) < 12:
        current = queue.pop(0)
        if current is None or any(current is seen for seen in found):
            continue
        found.append(current)
        queue += [
            getattr(current, "cause", None),
            current.__cause__,
            current.__context__,
            getattr(current, "original_exception", None),
        ]
    return [e for e in found if isinstance(e, BaseException)]


def unanswered_reason(exc: BaseException) -> str | None:
    """Why nothing answered (``connection refused``, ``timed out``, ``host not found``,
    ``connection reset``), or None when a server answered or the failure is another one."""
    text = " ".join(f"{type(e).__name__}: {e}" for e in _chain(exc))
    return next((reason for reason, pattern in _UNANSWERED if pattern.search(text)), None)
