"""Google Cloud Storage and BigQuery clients, for real GCP or the local emulators.

With ``STORAGE_EMULATOR_HOST`` / ``BIGQUERY_EMULATOR_HOST`` set, the Google clients
talk to the emulators with anonymous credentials. Otherwise they use a prefect-gcp
``GcpCredentials`` block when ``PARTYHELP_GCP_CREDENTIALS_BLOCK`` names one, else
Google application default credentials.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import bigquery, storage

from tasks.settings import Settings


def _block_credentials(block_name: str) -> Credentials:
    from prefect_gcp import GcpCredentials

    block = GcpCredentials.load(block_name)
    return block.get_credentials_from_service_account()


@lru_cache(maxsize=8)
def _cached_storage(project: str, emulated: bool, block: str | None) -> storage.Client:
    if emulated:
        return storage.Client(project=project, credentials=AnonymousCredentials())
    credentials: Any = _block_credentials(block) if block else None
    return storage.Client(project=project, credentials=credentials)


@lru_cache(maxsize=8)
def _cached_bigquery(project: str, location: str, emulated: bool,
                     block: str | None) -> bigquery.Client:
    if emulated:
        return bigquery.Client(project=project, location=location,
                               credentials=AnonymousCredentials())
    credentials: Any = _block_credentials(block) if block else None
    return bigquery.Client(project=project, location=location, credentials=credentials)


def storage_client(settings: Settings) -> storage.Client:
    """The GCS client for these settings (one per process and configuration)."""
    return _cached_storage(settings.bq_project, bool(settings.storage_emulator_host),
                           settings.gcp_credentials_block)


def bigquery_client(settings: Settings) -> bigquery.Client:
    """The BigQuery client for these settings (one per process and configuration)."""
    return _cached_bigquery(settings.bq_project, settings.bq_location,
                            bool(settings.bigquery_emulator_host),
                            settings.gcp_credentials_block)
