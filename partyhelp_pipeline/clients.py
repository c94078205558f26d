"""Google Cloud Storage and BigQuery clients, for real GCP or the local emulators.

With ``STORAGE_EMULATOR_HOST`` / ``BIGQUERY_EMULATOR_HOST`` set, the Google clients
talk to the emulators with anonymous credentials. Otherwise they use a prefect-gcp
``GcpCredentials`` block when ``PARTYHELP_GCP_CREDENTIALS_BLOCK`` names one, else
Google application default credentials.

Google's BigQuery client retries a lost connection for up to 10 minutes on every call.
``Settings.bq_retry_seconds`` (``PARTYHELP_BQ_RETRY_SECONDS``), when set, caps that, so that
an outage fails the task sooner (a whole window unanswered is not retried by the task either:
``unreachable_error`` says it in one sentence); unset, the library's own retries apply.
Only the clients' public ``retry``/``timeout`` parameters do this (no private method of a
Google client is overridden: a minor release could change one silently).
``Settings.gcs_retry_seconds`` (``PARTYHELP_GCS_RETRY_SECONDS``) does the same for the uploads
of parts and manifests (``google.cloud.storage.retry.DEFAULT_RETRY``, 120 s by default).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import lru_cache, wraps
from typing import Any

import google.cloud.storage as storage
from google.api_core.exceptions import NotFound
from google.api_core.retry import Retry
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import bigquery
from google.cloud.bigquery.retry import DEFAULT_JOB_RETRY
from google.cloud.storage.retry import DEFAULT_RETRY

from partyhelp_pipeline.errors import ServiceUnreachableError, unanswered_reason
from partyhelp_pipeline.logs import get_logger
from partyhelp_pipeline.settings import Settings


def _block_credentials(block_name: str) -> Credentials:
    from prefect_gcp import GcpCredentials

    block = GcpCredentials.load(block_name)
    credentials: Credentials = block.get_credentials_from_service_account()
    return credentials


def _anonymous() -> Credentials:
    """Credentials for the emulators (``AnonymousCredentials`` has no type hints)."""
    make: Callable[[], Credentials] = AnonymousCredentials
    return make()


# Clients are cached per configuration, emulator address included: a client built for one
# address must never serve settings that name another (its endpoint is fixed when built).
@lru_cache(maxsize=8)
def _cached_storage(project: str, emulator: str | None, block: str | None) -> storage.Client:
    if emulator:
        return storage.Client(
            project=project, credentials=_anonymous(), client_options={"api_endpoint": emulator}
        )
    credentials: Any = _block_credentials(block) if block else None
    return storage.Client(project=project, credentials=credentials)


LIBRARY_BQ_RETRY_SECONDS = 600.0  # google-cloud-bigquery's own deadline of a call's retries


# The public parameters that bound one BigQuery call: how long each request waits for an
# answer (``timeout``; ``api_timeout`` of ``query_and_wait``), and how long it is retried
# (``retry``; ``job_retry``, which re-runs a failed query job).
_WAIT_PARAMETERS = frozenset({"timeout", "api_timeout"})
_RETRY_PARAMETERS = frozenset({"retry", "job_retry"})


def bounded_wait(timeout: Any, window: float) -> float:
    """A request's timeout, at most ``window``: none (wait for ever), a library default
    above the window or a (connect, read) pair all become the window."""
    if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout <= window:
        return timeout
    return window


def bounded_retry(retry: Any, window: float) -> Any:
    """A retry that gives up within ``window``: the caller's if it already does, or is
    ``None`` (no retry); else the same retry with its timeout cut to the window."""
    if not isinstance(retry, Retry) or (retry.timeout is not None and retry.timeout <= window):
        return retry
    return retry.with_timeout(window)


def bounded_job_retry(job_retry: Any, window: float, job_id: str | None = None) -> Any:
    """A query's ``job_retry`` within ``window``. With any ``job_retry`` but ``None`` the
    library also retries the query's ``jobs.insert`` for its own 600 s, which no public
    parameter shortens: under that, ``None`` (no re-run here; the task's retries re-run a
    query job that failed). A query given its own ``job_id`` takes no ``job_retry`` but
    ``None`` or the library's default (the library refuses any other), so that one is kept."""
    if job_retry is None or window < LIBRARY_BQ_RETRY_SECONDS:
        return None
    return job_retry if job_id else bounded_retry(job_retry, window)


def _bounded_method(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` of ``bigquery.Client``, called with its public ``retry``/``timeout``
    arguments cut to the client's window (a caller's smaller values are kept)."""
    signature = inspect.signature(method)

    @wraps(method)
    def bounded(client: BoundedBigQueryClient, *args: Any, **kwargs: Any) -> Any:
        call = signature.bind(client, *args, **kwargs)
        window = client.retry_seconds
        for name in signature.parameters.keys() & (_WAIT_PARAMETERS | _RETRY_PARAMETERS):
            value = call.arguments.get(name, signature.parameters[name].default)
            if name in _WAIT_PARAMETERS:
                call.arguments[name] = bounded_wait(value, window)
            elif name == "retry":
                call.arguments[name] = bounded_retry(value, window)
            else:
                call.arguments[name] = bounded_job_retry(
                    value, window, call.arguments.get("job_id")
                )
        return method(*call.args, **call.kwargs)

    return bounded


class BoundedBigQueryClient(bigquery.Client):
    """A BigQuery client each of whose API requests, and each request's retries, end within
    ``retry_seconds``, through the public ``retry``/``timeout`` parameters of its methods
    alone (``BOUNDED_METHODS``).

    A job's polling is bounded too: ``LoadJob.result()`` and ``CopyJob.result()`` ask the
    job's client for it (``Client.get_job``) while the job runs, so each poll ends within
    the window and a hung server (connections accepted, nothing answered) holds no request
    for ever; the whole wait stays unbounded, as a large load legitimately takes minutes.
    A query's wait is bounded by the arguments ``query_options`` gives ``QueryJob.result``.
    """

    def __init__(self, *args: Any, retry_seconds: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_seconds = retry_seconds


# Every public method of the client that takes a retry or timeout parameter: the project's
# calls (get_dataset, load_table_from_uri, copy_table, get_table, ...) and the library's own
# calls back into its client (get_job while a job is polled, get_dataset after a Conflict).
BOUNDED_METHODS = tuple(
    name
    for name, method in inspect.getmembers(bigquery.Client, inspect.isfunction)
    if not name.startswith("_")
    and inspect.signature(method).parameters.keys() & (_WAIT_PARAMETERS | _RETRY_PARAMETERS)
)
for method_name in BOUNDED_METHODS:
    setattr(
        BoundedBigQueryClient, method_name, _bounded_method(getattr(bigquery.Client, method_name))
    )


def bigquery_window(settings: Settings) -> float:
    """How long one BigQuery call may keep retrying: ``PARTYHELP_BQ_RETRY_SECONDS``, else the
    library's 600 s."""
    return settings.bq_retry_seconds or LIBRARY_BQ_RETRY_SECONDS


def query_options(settings: Settings) -> dict[str, Any]:
    """Public parameters of both ``Client.query`` and ``QueryJob.result`` that end a query
    within the window: each request's ``retry`` and ``timeout``, and the ``job_retry``
    (``bounded_job_retry``), which re-runs a query job after a lost connection for 40
    minutes by default (it kept a view refresh Running for half an hour with BigQuery down).

    ``QueryJob.result`` asks for its rows through no public method of the client, so its
    ``timeout`` is the only bound of those requests; it bounds the whole wait for the query
    too (the sync's queries are totals, DDL and audit reads: seconds). The library raises a
    timeout under 120 s to 120 s for its ``getQueryResults`` requests alone.
    """
    window = bigquery_window(settings)
    request_retry: Retry = bigquery.DEFAULT_RETRY
    return {
        "retry": request_retry.with_timeout(window),
        "timeout": window,
        "job_retry": bounded_job_retry(DEFAULT_JOB_RETRY, window),
    }


def gcs_upload_retry(settings: Settings) -> Retry:
    """The retry of one create-only upload: the library's, for at most
    ``settings.gcs_retry_seconds`` when set. Safe to retry: ``if_generation_match=0``
    never lets a repeated request replace an object."""
    library: Retry = DEFAULT_RETRY
    seconds = settings.gcs_retry_seconds
    return library if seconds is None else library.with_timeout(seconds)


@lru_cache(maxsize=8)
def _cached_bigquery(
    project: str,
    location: str,
    emulator: str | None,
    block: str | None,
    retry_seconds: float | None,
) -> bigquery.Client:
    kwargs: dict[str, Any] = {"project": project, "location": location}
    if emulator:
        kwargs["credentials"] = _anonymous()
        kwargs["client_options"] = {"api_endpoint": emulator}
    elif block:
        kwargs["credentials"] = _block_credentials(block)
    return BoundedBigQueryClient(retry_seconds=retry_seconds or LIBRARY_BQ_RETRY_SECONDS, **kwargs)


def storage_client(settings: Settings) -> storage.Client:
    """The GCS client for these settings (one per process and configuration)."""
    return _cached_storage(
        settings.bq_project, settings.storage_emulator_host, settings.gcp_credentials_block
    )


@lru_cache(maxsize=8)
def _dataset_location(
    project: str,
    dataset: str,
    configured: str,
    emulator: str | None,
    block: str | None,
    retry_seconds: float | None,
) -> str:
    client = _cached_bigquery(project, configured, emulator, block, retry_seconds)
    try:
        actual = client.get_dataset(f"{project}.{dataset}").location
    except NotFound:
        return configured  # the flow creates it, in the configured location
    if actual and actual.lower() != configured.lower():
        get_logger().warning(
            "dataset %s.%s is in %s: its jobs run there (PARTYHELP_BQ_LOCATION=%s only "
            "places a dataset the flow creates)",
            project,
            dataset,
            actual,
            configured,
        )
    return actual or configured


def bigquery_client(settings: Settings) -> bigquery.Client:
    """The BigQuery client for these settings (one per process and configuration), whose
    jobs run in the dataset's own location: BigQuery runs a job only where its dataset is,
    and an existing dataset may be elsewhere than ``PARTYHELP_BQ_LOCATION``."""
    retry_seconds = settings.bq_retry_seconds
    location = _dataset_location(
        settings.bq_project,
        settings.bq_dataset,
        settings.bq_location,
        settings.bigquery_emulator_host,
        settings.gcp_credentials_block,
        retry_seconds,
    )
    return _cached_bigquery(
        settings.bq_project,
        location,
        settings.bigquery_emulator_host,
        settings.gcp_credentials_block,
        retry_seconds,
    )


# ------------------------------------------------------------------ a service that is down

# The API endpoints the clients use on GCP (their libraries' defaults).
GCP_ENDPOINTS = {
    "BigQuery": "https://bigquery.googleapis.com",
    "GCS": "https://storage.googleapis.com",
}
EMULATOR_HINT = "is the emulator running? scripts/stack.sh status"
GCP_HINT = (
    "check this machine's route to it (proxy, firewall, VPC egress) and "
    "https://status.cloud.google.com"
)


def service_address(settings: Settings, service: str) -> str:
    """Where the client of ``service`` (``BigQuery`` or ``GCS``) sends its requests."""
    emulator = (
        settings.bigquery_emulator_host if service == "BigQuery" else settings.storage_emulator_host
    )
    return emulator or GCP_ENDPOINTS[service]


def unreachable_error(
    settings: Settings, service: str, window: float, exc: BaseException
) -> ServiceUnreachableError | None:
    """``exc`` as the one sentence a person reads, when it says that ``service`` did not
    answer for the ``window`` its call retried (None when the service answered): its
    address, the window, why, and what to check (the emulator, or the route to GCP)."""
    reason = unanswered_reason(exc)
    if reason is None:
        return None
    address = service_address(settings, service)
    hint = GCP_HINT if address == GCP_ENDPOINTS[service] else EMULATOR_HINT
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return ServiceUnreachableError(
        f"{service} at {address} did not answer within {window:g} s ({reason}): {hint}",
        service=service,
        detail=f"{type(exc).__name__}: {detail}",
    )
