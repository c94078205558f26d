"""Where exports live in GCS, and the manifest that makes a set of parts loadable.

Layout, one folder per sync date, table and export attempt::

    gs://BUCKET/PREFIX/sync_date=2026-11-25/ph_leads/20261125T031502Z-3f2a9c1e/
        part-0000-0000-k3j9.avro ...
        manifest.json

The manifest is written last, with a create-only precondition, after every part it
lists was uploaded and its checksum verified; loads take their URIs from it, never
from a wildcard, so a stray part of a failed attempt can never be loaded. A re-run
of the same date writes a new export folder: attempts never mix, and all are kept.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import google_crc32c
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import storage

from partyhelp_pipeline.errors import DamagedExportError, ExportIntegrityError

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


def date_folder(prefix: str, sync_date: dt.date) -> str:
    """Object prefix of one sync date: ``PREFIX/sync_date=YYYY-MM-DD``."""
    folder = f"sync_date={sync_date.isoformat()}"
    return f"{prefix}/{folder}" if prefix else folder


def table_folder(prefix: str, sync_date: dt.date, table: str) -> str:
    """Object prefix of one table's exports for a sync date."""
    return f"{date_folder(prefix, sync_date)}/{table}"


def export_folder(prefix: str, sync_date: dt.date, table: str, export_id: str) -> str:
    """Object prefix of one export attempt."""
    return f"{table_folder(prefix, sync_date, table)}/{export_id}"


def gs_uri(bucket: str, name: str) -> str:
    """``gs://bucket/name``."""
    return f"gs://{bucket}/{name}"


def split_gs_uri(uri: str) -> tuple[str, str]:
    """``(bucket, object name)`` of a ``gs://`` URI."""
    if not uri.startswith("gs://") or "/" not in uri[5:]:
        raise ValueError(f"not a gs:// object URI: {uri!r}")
    bucket, name = uri[5:].split("/", 1)
    return bucket, name


def crc32c_base64(data: bytes | memoryview) -> str:
    """CRC32C as GCS reports it: base64 of the big-endian 4 bytes."""
    return base64.b64encode(google_crc32c.Checksum(data).digest()).decode("ascii")


def file_crc32c_base64(path: str, block: int = 4 * 1024 * 1024) -> str:
    """CRC32C of a file, read in blocks."""
    checksum = google_crc32c.Checksum()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            checksum.update(chunk)
    return base64.b64encode(checksum.digest()).decode("ascii")


@dataclass(frozen=True)
class PartInfo:
    """One uploaded Avro part."""

    uri: str
    rows: int
    bytes: int
    crc32c: str
    chunk: int = 0


@dataclass
class Manifest:
    """Everything needed to load, audit or replay one table's export."""

    table: str
    sync_date: dt.date  # text in the manifest's JSON
    export_id: str
    flow_run_id: str | None
    extracted_at: str
    completed_at: str
    parts: list[PartInfo]
    rows: int
    bytes: int
    source_totals: dict[str, int]
    exported_totals: dict[str, int]
    quality: dict[str, Any]
    chunks: list[dict[str, Any]]
    avro_schema: dict[str, Any]
    bigquery_schema: list[dict[str, str]]
    driver: str = ""
    replaces: str | None = None  # export id of a damaged export of the same run, redone
    # ``freshness.SourceFreshness`` as a dict; None in manifests written before it existed.
    freshness: dict[str, Any] | None = None
    format_version: int = FORMAT_VERSION
    uri: str = field(default="", compare=False)

    @property
    def part_uris(self) -> list[str]:
        """The URIs a load job reads, in order."""
        return [part.uri for part in self.parts]

    def to_json(self) -> str:
        """The manifest's JSON text (without its own URI)."""
        data = asdict(self)
        data.pop("uri")
        data["sync_date"] = self.sync_date.isoformat()
        return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str, uri: str = "") -> Manifest:
        """Parse a manifest written by ``to_json``."""
        data = json.loads(text)
        data["parts"] = [PartInfo(**part) for part in data["parts"]]
        data["sync_date"] = dt.date.fromisoformat(data["sync_date"])
        return cls(**data, uri=uri)


def write_manifest(
    client: storage.Client, bucket: str, folder: str, manifest: Manifest, retry: Retry
) -> str:
    """Write the manifest once (create-only) and return its URI."""
    name = f"{folder}/{MANIFEST_NAME}"
    blob = client.bucket(bucket).blob(name)
    payload = manifest.to_json().encode("utf-8")
    try:
        blob.upload_from_string(
            payload,
            content_type="application/json",
            if_generation_match=0,
            checksum="crc32c",
            retry=retry,
        )
    except gexc.PreconditionFailed:
        # A retried request whose first try landed: the same bytes are fine, others are not.
        blob.reload()
        if blob.crc32c != crc32c_base64(payload):
            raise ExportIntegrityError(
                f"{manifest.table}: a different manifest already exists at {gs_uri(bucket, name)}",
                table=manifest.table,
            ) from None
    return gs_uri(bucket, name)


def read_manifest(client: storage.Client, uri: str) -> Manifest:
    """Read a manifest; a missing one is an ``ExportIntegrityError``."""
    bucket, name = split_gs_uri(uri)
    try:
        text = client.bucket(bucket).blob(name).download_as_text(encoding="utf-8")
    except gexc.NotFound:
        raise ExportIntegrityError(f"no manifest at {uri}") from None
    return Manifest.from_json(text, uri=uri)


def manifest_names(client: storage.Client, bucket: str, folder: str) -> list[str]:
    """The object names of every manifest below ``folder`` (committed exports only)."""
    return [
        blob.name
        for blob in client.list_blobs(bucket, prefix=folder.rstrip("/") + "/")
        if blob.name.endswith("/" + MANIFEST_NAME)
    ]


def has_kept_export(
    client: storage.Client, bucket: str, prefix: str, sync_date: dt.date, table: str
) -> bool:
    """Whether ``table`` has a committed export kept for ``sync_date``."""
    return bool(manifest_names(client, bucket, table_folder(prefix, sync_date, table)))


def find_latest_manifest(
    client: storage.Client, bucket: str, prefix: str, sync_date: dt.date, table: str
) -> Manifest:
    """The newest complete export of ``table`` for ``sync_date``, by extraction time."""
    folder = table_folder(prefix, sync_date, table) + "/"
    names = manifest_names(client, bucket, folder)
    if not names:
        raise ExportIntegrityError(
            f"{table}: no manifest under {gs_uri(bucket, folder)}: nothing to replay for "
            f"{sync_date.isoformat()}",
            table=table,
        )
    manifests = [read_manifest(client, gs_uri(bucket, name)) for name in names]
    return max(manifests, key=lambda m: (m.extracted_at, m.export_id))


def verify_parts(client: storage.Client, manifest: Manifest) -> None:
    """Check every listed part exists with the manifest's size and CRC32C (metadata only)."""
    for part in manifest.parts:
        bucket, name = split_gs_uri(part.uri)
        blob = client.bucket(bucket).get_blob(name)
        if blob is None:
            raise DamagedExportError(
                f"{manifest.table}: part {part.uri} listed in {manifest.uri} is missing",
                table=manifest.table,
            )
        if blob.size != part.bytes or blob.crc32c != part.crc32c:
            raise DamagedExportError(
                f"{manifest.table}: part {part.uri} does not match {manifest.uri} "
                f"(size {blob.size} vs {part.bytes}, crc32c {blob.crc32c} vs {part.crc32c})",
                table=manifest.table,
            )
