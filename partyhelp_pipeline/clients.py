"""Google Cloud Storage and BigQuery clients, for real GCP or the local emulators.

With ``STORAGE_EMULATOR_HOST`` / ``BIGQUERY_EMULATOR_HOST`` set, the Google clients
talk to the emulators with anonymous credentials. Otherwise they use a prefect-gcp
``GcpCredentials`` block when ``PARTYHELP_GCP_CREDENTIALS_BLOCK`` names one, else
Google application default credentials.

Google's BigQuery client retries a lost connection for up to 10 minutes on every call.
``Settings.bq_retry_seconds`` (``PARTYHELP_BQ_RETRY_SECONDS``), when set, caps that, so that
an outage fails the task sooner (a whole window unanswered is not retried by the task either:
``unreachable_error`` says it in one sentence); unset, the library's own retries apply.
Every BigQuery call of the package says so itself, with the public ``retry``, ``timeout``
and ``job_retry`` arguments of ``call_options`` and ``query_options``; the clients here are
the library's own, unchanged.
``Settings.gcs_retry_seconds`` (``PARTYHELP_GCS_RETRY_SECONDS``) does the same for the uploads
of parts and manifests (``google.cloud.storage.retry.DEFAULT_RETRY``, 120 s by default).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
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


def bigquery_window(retry_seconds: float | None) -> float:
    """How long one BigQuery call may keep retrying: ``PARTYHELP_BQ_RETRY_SECONDS``, else the
    library's 600 s."""
    return retry_seconds or LIBRARY_BQ_RETRY_SECONDS


def call_options(window: float, timeout: float | None = None) -> dict[str, Any]:
    """``retry`` and ``timeout`` of one BigQuery API call (``get_table``, ``create_table``,
    ``load_table_from_uri``, ``get_job``, a job's ``result``...): its retries end within
    ``window``, and each request waits at most ``timeout`` (default: the window) for an
    answer, where the library's own defaults are 600 s of retries and no request timeout."""
    retry: Retry = bigquery.DEFAULT_RETRY
    return {
        "retry": retry.with_timeout(window),
        "timeout": window if timeout is None else min(timeout, window),
    }


def query_options(window: float, timeout: float | None = None) -> dict[str, Any]:
    """Public parameters of both ``Client.query`` and ``QueryJob.result`` that end a query
    within the window: ``call_options``, and the ``job_retry``, which re-runs a query job
    after a lost connection for 40 minutes by default (it kept a view refresh Running for
    half an hour with BigQuery down). With any ``job_retry`` but ``None`` the library also
    retries the query's ``jobs.insert`` for its own 600 s, which no public parameter
    shortens: under that, ``None`` (no re-run here; the task's retries re-run a query job
    that failed).

    ``QueryJob.result`` asks for its rows through no public method of the client, so its
    ``timeout`` is the only bound of those requests; it bounds the whole wait for the query
    too (the sync's queries are totals, DDL and audit reads: seconds). The library raises a
    timeout under 120 s to 120 s for its ``getQueryResults`` requests alone. A query given
    its own ``job_id`` takes ``job_retry=None`` (the library refuses any other but its
    default): a failed one is re-run under the next try id, by the task's retry.
    """
    job_retry: Retry = DEFAULT_JOB_RETRY
    return {
        **call_options(window, timeout),
        "job_retry": job_retry.with_timeout(window) if window >= LIBRARY_BQ_RETRY_SECONDS else None,
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
    project: str, location: str, emulator: str | None, block: str | None
) -> bigquery.Client:
    kwargs: dict[str, Any] = {"project": project, "location": location}
    if emulator:
        kwargs["credentials"] = _anonymous()
        kwargs["client_options"] = {"api_endpoint": emulator}
    elif block:
        kwargs["credentials"] = _block_credentials(block)
    return bigquery.Client(**kwargs)


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
    client = _cached_bigquery(project, configured, emulator, block)
    try:
        actual = client.get_dataset(
            f"{project}.{dataset}", **call_options(bigquery_window(retry_seconds))
        ).location
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
