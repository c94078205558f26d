"""Google Cloud Storage and BigQuery clients, for real GCP or the local emulators.

With ``STORAGE_EMULATOR_HOST`` / ``BIGQUERY_EMULATOR_HOST`` set, the Google clients
talk to the emulators with anonymous credentials. Otherwise they use a prefect-gcp
``GcpCredentials`` block when ``PARTYHELP_GCP_CREDENTIALS_BLOCK`` names one, else
Google application default credentials.

Google's BigQuery client retries a lost connection for up to 10 minutes on every call.
``Settings.bq_retry_seconds`` (``PARTYHELP_BQ_RETRY_SECONDS``), when set, caps that, so that
an outage fails the task (and Prefect's task retries take over) sooner; unset, the library's
own retries apply. ``Settings.gcs_retry_seconds`` (``PARTYHELP_GCS_RETRY_SECONDS``) does the
same for the uploads of parts and manifests (the storage library's default: 120 s).
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
        return storage.Client(project=project, credentials=_anonymous(),
                              client_options={"api_endpoint": emulator})
    credentials: Any = _block_credentials(block) if block else None
    return storage.Client(project=project, credentials=credentials)


class _BigQueryClient(bigquery.Client):
    """A BigQuery client each of whose API requests, and each request's retries, end within
    ``retry_seconds``.

    Every API request of the client goes through ``_call_api``, the polling of load and
    copy jobs included, which no public parameter reaches: ``LoadJob.result(timeout=)`` bounds
    the whole wait for the job instead (a large load legitimately takes minutes), and without
    a per-request timeout a hung server (connections accepted, nothing answered) holds a
    request for ever. Calls that pass their own ``retry``/``timeout`` keep the smaller.
    """

    def __init__(self, *args: Any, retry_seconds: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._retry_seconds = retry_seconds

    def _call_api(self, retry: Any, *args: Any, **kwargs: Any) -> Any:
        if retry is not None and (retry.timeout is None or retry.timeout > self._retry_seconds):
            retry = retry.with_timeout(self._retry_seconds)
        timeout = kwargs.get("timeout")
        if not isinstance(timeout, int | float) or timeout > self._retry_seconds:
            kwargs["timeout"] = self._retry_seconds
        return super()._call_api(retry, *args, **kwargs)


LIBRARY_BQ_RETRY_SECONDS = 600.0  # google-cloud-bigquery's own deadline of a call's retries


def bigquery_window(settings: Settings) -> float:
    """How long one BigQuery call may keep retrying: ``PARTYHELP_BQ_RETRY_SECONDS``, else the
    library's 600 s."""
    return settings.bq_retry_seconds or LIBRARY_BQ_RETRY_SECONDS


def query_options(settings: Settings) -> dict[str, Any]:
    """Public parameters of ``Client.query`` and ``QueryJob.result`` that keep a query within
    the window: the job retry, which re-runs a query job after a lost connection for 10
    minutes by default (it kept a view refresh Running for half an hour with BigQuery down).
    Each request's own timeout and retry are the client's (``_BigQueryClient``)."""
    retry: Retry = DEFAULT_JOB_RETRY
    return {"job_retry": retry.with_timeout(bigquery_window(settings))}


def gcs_upload_retry(settings: Settings) -> Retry:
    """The retry of one create-only upload: the library's, for at most
    ``settings.gcs_retry_seconds`` when set. Safe to retry: ``if_generation_match=0``
    never lets a repeated request replace an object."""
    library: Retry = DEFAULT_RETRY
    seconds = settings.gcs_retry_seconds
    return library if seconds is None else library.with_timeout(seconds)


@lru_cache(maxsize=8)
def _cached_bigquery(project: str, location: str, emulator: str | None, block: str | None,
                     retry_seconds: float | None) -> bigquery.Client:
    kwargs: dict[str, Any] = {"project": project, "location": location}
    if emulator:
        kwargs["credentials"] = _anonymous()
        kwargs["client_options"] = {"api_endpoint": emulator}
    elif block:
        kwargs["credentials"] = _block_credentials(block)
    return _BigQueryClient(retry_seconds=retry_seconds or LIBRARY_BQ_RETRY_SECONDS, **kwargs)


def storage_client(settings: Settings) -> storage.Client:
    """The GCS client for these settings (one per process and configuration)."""
    return _cached_storage(settings.bq_project, settings.storage_emulator_host,
                           settings.gcp_credentials_block)


@lru_cache(maxsize=8)
def _dataset_location(project: str, dataset: str, configured: str, emulator: str | None,
                      block: str | None, retry_seconds: float | None) -> str:
    client = _cached_bigquery(project, configured, emulator, block, retry_seconds)
    try:
        actual = client.get_dataset(f"{project}.{dataset}").location
    except NotFound:
        return configured  # the flow creates it, in the configured location
    if actual and actual.lower() != configured.lower():
        get_logger().warning(
            "dataset %s.%s is in %s: its jobs run there (PARTYHELP_BQ_LOCATION=%s only "
            "places a dataset the flow creates)", project, dataset, actual, configured)
    return actual or configured


def bigquery_client(settings: Settings) -> bigquery.Client:
    """The BigQuery client for these settings (one per process and configuration), whose
    jobs run in the dataset's own location: BigQuery runs a job only where its dataset is,
    and an existing dataset may be elsewhere than ``PARTYHELP_BQ_LOCATION``."""
    retry_seconds = settings.bq_retry_seconds
    location = _dataset_location(settings.bq_project, settings.bq_dataset, settings.bq_location,
                                 settings.bigquery_emulator_host,
                                 settings.gcp_credentials_block, retry_seconds)
    return _cached_bigquery(settings.bq_project, location, settings.bigquery_emulator_host,
                            settings.gcp_credentials_block, retry_seconds)
