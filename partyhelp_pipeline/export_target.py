"""Where and how an export reads and writes, resolved once from the settings.

Each export task builds one ``ExportTarget`` from the run's settings at its top and hands it
down: below the tasks, the export takes clients and values, never the whole ``Settings``.
It never crosses a task boundary (it holds clients and the PII salt): tasks take names and
plans, and build it themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from google.api_core.retry import Retry
from google.cloud.storage import Client as StorageClient
from pydantic import SecretStr

from partyhelp_pipeline.clients import gcs_upload_retry, storage_client
from partyhelp_pipeline.settings import MySQLSettings, Settings


@dataclass(frozen=True)
class ExportTarget:
    """The source to read, the bucket to write, and the export's sizes and PII choice."""

    source: MySQLSettings
    storage: StorageClient
    bucket: str
    prefix: str
    upload_retry: Retry
    chunk_rows: int
    batch_rows: int
    part_max_bytes: int
    progress_seconds: float
    include_pii_hashes: bool
    pii_salt: SecretStr | None = field(default=None, repr=False)
    max_source_age_hours: float | None = None  # the freshness settings (``freshness.Limits``)
    warn_source_age_hours: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ExportTarget:
        """Resolve the clients and values an export needs, once."""
        return cls(
            source=settings.mysql,
            storage=storage_client(settings),
            bucket=settings.gcs_bucket,
            prefix=settings.gcs_prefix,
            upload_retry=gcs_upload_retry(settings),
            chunk_rows=settings.chunk_rows,
            batch_rows=settings.batch_rows,
            part_max_bytes=settings.part_max_bytes,
            progress_seconds=settings.progress_seconds,
            include_pii_hashes=settings.include_pii_hashes,
            pii_salt=settings.pii_salt,
            max_source_age_hours=settings.max_source_age_hours,
            warn_source_age_hours=settings.warn_source_age_hours,
        )

    @property
    def salt_bytes(self) -> bytes | None:
        """The PII salt as the HMAC key, or None."""
        return self.pii_salt.get_secret_value().encode() if self.pii_salt else None
