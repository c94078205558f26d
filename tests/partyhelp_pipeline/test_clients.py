"""The Google clients through their public interfaces only (issue 12): which errors a retry
can heal, by google-api-core's predicates and BigQuery's error reasons; every BigQuery request
bounded by the public ``retry``/``timeout``/``job_retry`` arguments each call site passes
(``clients.call_options``, ``clients.query_options``), the client itself the library's own.

The hung server is real: a socket that accepts connections and never answers."""

from __future__ import annotations

import ast
import inspect
import socket
import time
from collections.abc import Iterator
from typing import Any

import google.auth.exceptions
import pytest
import requests
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from google.cloud.bigquery.retry import DEFAULT_JOB_RETRY

from partyhelp_pipeline import bq_jobs, clients
from partyhelp_pipeline.clients import (
    LIBRARY_BQ_RETRY_SECONDS,
    bigquery_window,
    call_options,
    query_options,
)
from partyhelp_pipeline.errors import TRANSIENT_BIGQUERY_REASONS, is_transient
from tests.conftest import ROOT

ISSUE_REASONS = {
    "backendError",
    "rateLimitExceeded",
    "internalError",
    "jobBackendError",
    "jobInternalError",
    "badGateway",
}


def test_the_issues_bigquery_reasons_are_all_transient() -> None:
    assert ISSUE_REASONS <= TRANSIENT_BIGQUERY_REASONS


@pytest.mark.parametrize("reason", sorted(ISSUE_REASONS | {"jobRateLimitExceeded"}))
@pytest.mark.parametrize("status", [400, 403, 500])
def test_an_error_with_a_transient_bigquery_reason_is_retried(reason: str, status: int) -> None:
    """Whatever HTTP status the reason came with: BigQuery answers rateLimitExceeded with a
    403, a failed job's reason comes with the status the library maps it to."""
    error = gexc.from_http_status(
        status,
        "job failed",
        errors=[
            {"reason": "invalid", "message": "a first error"},
            {"reason": reason, "message": "try again"},
        ],
    )
    assert is_transient(error)


@pytest.mark.parametrize(
    "reason",
    [
        "invalid",
        "invalidQuery",
        "notFound",
        "accessDenied",
        "quotaExceeded",
        "duplicate",
        "billingNotEnabled",
    ],
)
def test_an_error_whose_bigquery_reasons_a_retry_cannot_heal_fails_at_once(reason: str) -> None:
    error = gexc.from_http_status(400, "job failed", errors=[{"reason": reason}])
    assert not is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        gexc.InternalServerError("500"),
        gexc.TooManyRequests("429"),
        gexc.ResourceExhausted("429"),
        gexc.ServiceUnavailable("503"),
        gexc.BadGateway("502"),
        gexc.GatewayTimeout("504"),
        gexc.DeadlineExceeded("504"),
        gexc.from_http_status(408, "request timeout"),
        requests.exceptions.ConnectionError("refused"),
        requests.exceptions.ChunkedEncodingError("cut"),
        google.auth.exceptions.TransportError("no route"),
    ],
)
def test_google_api_cores_transient_errors_are_retried(error: Exception) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        gexc.BadRequest("bad"),
        gexc.Unauthorized("who"),
        gexc.Forbidden("denied", errors=[{"reason": "accessDenied"}]),
        gexc.NotFound("none"),
        gexc.Conflict("exists"),
        gexc.PreconditionFailed("etag"),
        gexc.MethodNotImplemented("501"),
        google.auth.exceptions.RefreshError("bad key"),
    ],
)
def test_google_errors_a_retry_cannot_heal_fail_at_once(error: Exception) -> None:
    assert not is_transient(error)


def _retry_error_after(cause: Exception) -> gexc.RetryError:
    """The RetryError google-api-core raises when a retry's window ends on ``cause``."""
    try:
        raise gexc.RetryError("Timeout of 3.0s exceeded", cause) from cause
    except gexc.RetryError as exc:
        return exc


def test_a_retry_window_that_ended_is_as_transient_as_its_last_error() -> None:
    assert is_transient(_retry_error_after(gexc.ServiceUnavailable("503")))
    assert not is_transient(_retry_error_after(gexc.NotFound("404")))


# ---------------------------------------------------------------- no private interface


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_the_clients_module_uses_no_private_name_of_any_object() -> None:
    """No ``x._name`` anywhere in clients.py: no private method or attribute of a Google
    client (or of anything else) is called, read or overridden."""
    source = inspect.getsource(clients)
    private = sorted(
        {
            node.attr
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Attribute) and _private(node.attr)
        }
    )
    assert private == []
    assert "_call_api" not in source


def test_the_bigquery_client_is_the_librarys_own() -> None:
    """No subclass of a Google client, no method set on one: the bounds are arguments."""
    tree = ast.parse(inspect.getsource(clients))
    assert not [node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    assert "setattr" not in {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }


# The BigQuery calls that make a request, by the names the package calls them with.
BIGQUERY_CALLS = {
    "get_dataset",
    "create_dataset",
    "update_dataset",
    "get_table",
    "create_table",
    "update_table",
    "delete_table",
    "load_table_from_uri",
    "load_table_from_json",
    "copy_table",
    "query",
    "get_job",
    "result",
    "done",
}
BIGQUERY_CALLERS = [
    *sorted((ROOT / "partyhelp_pipeline" / "warehouse").glob("*.py")),
    ROOT / "partyhelp_pipeline" / "bq_jobs.py",
    ROOT / "partyhelp_pipeline" / "clients.py",
    ROOT / "partyhelp_pipeline" / "preflight.py",
]


def test_every_bigquery_call_of_the_package_passes_its_bounds() -> None:
    """Each call passes its ``timeout`` (and ``retry``) itself, from ``call_options`` or
    ``query_options`` (``**options``), or asks for no request (``done(reload=False)``)."""
    unbounded = []
    for path in BIGQUERY_CALLERS:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in BIGQUERY_CALLS
            ):
                continue
            names = {keyword.arg for keyword in node.keywords}
            if not names & {None, "timeout", "reload"}:  # None: a ``**options``
                unbounded.append(f"{path.name}:{node.lineno} {node.func.attr}")
    assert unbounded == []


def test_call_options_bound_the_retry_and_each_request() -> None:
    options = call_options(3)
    assert options["retry"].timeout == 3 and options["timeout"] == 3
    assert call_options(30, timeout=10)["timeout"] == 10  # the pre-flight's request timeout
    assert call_options(3, timeout=10)["timeout"] == 3
    assert bigquery_window(None) == LIBRARY_BQ_RETRY_SECONDS == 600
    library: Retry = bigquery.DEFAULT_RETRY
    assert library.timeout == 600  # what the window replaces


def test_a_query_job_is_rerun_only_when_the_libraries_insert_retry_fits_the_window() -> None:
    """Any job_retry but None brings the library's own 600 s retry of jobs.insert along."""
    library: Retry = DEFAULT_JOB_RETRY
    assert library.timeout == 2400
    assert query_options(3)["job_retry"] is None
    assert query_options(599.9)["job_retry"] is None
    assert query_options(600)["job_retry"].timeout == 600


def test_query_options_bound_every_request_the_job_retry_and_the_wait() -> None:
    options = query_options(bigquery_window(7))
    assert options["timeout"] == 7
    assert options["retry"].timeout == 7
    assert options["job_retry"] is None
    # Both calls take them as public arguments.
    for accepts in (bigquery.Client.query, bigquery.QueryJob.result):
        assert set(options) <= set(inspect.signature(accepts).parameters)
    unset = query_options(bigquery_window(None))
    assert unset["timeout"] == unset["retry"].timeout == unset["job_retry"].timeout == 600


# ---------------------------------------------------------------- against a hung server

WINDOW = 1.0


@pytest.fixture()
def hung_client() -> Iterator[bigquery.Client]:
    """The library's client, whose BigQuery accepts every connection and never answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as server:
        port = server.getsockname()[1]
        client = bigquery.Client(
            project="p",
            location="US",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": f"http://127.0.0.1:{port}"},
        )
        yield client
        client.close()


def _seconds_to_fail(call: Any) -> float:
    started = time.monotonic()
    with pytest.raises(Exception, match=r"(?i)time"):
        call()
    return time.monotonic() - started


def test_a_request_to_a_hung_server_ends_within_the_window(hung_client: bigquery.Client) -> None:
    """The library's own bounds (600 s of retries, no request timeout) are replaced by the
    window the call passes."""
    options = call_options(WINDOW)
    calls = {
        "get_table": lambda: hung_client.get_table("p.d.t", **options),
        "create_dataset": lambda: hung_client.create_dataset("p.d", exists_ok=True, **options),
        "load_table_from_uri": lambda: hung_client.load_table_from_uri(
            ["gs://b/part-0.avro"], "p.d.t", **options
        ),
    }
    for name, call in calls.items():
        assert _seconds_to_fail(call) < 6 * WINDOW, name


def test_the_polling_of_a_running_job_ends_within_the_window(
    hung_client: bigquery.Client,
) -> None:
    """A load job BigQuery started, waited for by ``bq_jobs.wait_for``: each poll is one
    request within the window, so a hung server fails the wait within it (``result()``
    alone would let each poll wait 128 s)."""
    job = hung_client.job_from_resource(
        {
            "jobReference": {"projectId": "p", "jobId": "load_1", "location": "US"},
            "configuration": {
                "load": {
                    "sourceUris": ["gs://b/part-0.avro"],
                    "destinationTable": {"projectId": "p", "datasetId": "d", "tableId": "t"},
                }
            },
            "status": {"state": "RUNNING"},
        }
    )
    assert isinstance(job, bigquery.LoadJob)
    assert _seconds_to_fail(lambda: bq_jobs.wait_for(job, WINDOW)) < 6 * WINDOW


def test_a_query_ends_within_the_window_with_or_without_its_own_job_id(
    hung_client: bigquery.Client,
) -> None:
    options = query_options(WINDOW)
    assert _seconds_to_fail(lambda: hung_client.query("SELECT 1", **options)) < 6 * WINDOW
    # With a job_id the library refuses a job_retry but its default or None.
    own_id = {**options, "job_retry": None}
    assert (
        _seconds_to_fail(lambda: hung_client.query("SELECT 1", job_id="q_1", **own_id)) < 6 * WINDOW
    )
