"""Avro parts into GCS: rolls encoded blocks into part files and uploads each while the
next one is written, create-only and CRC32C-verified.

A part becomes visible in GCS only whole (a create-only upload); it is listed by a
manifest only once its upload returned and its checksum matched.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry

from partyhelp_pipeline import avro_encoding as avro
from partyhelp_pipeline import manifest as mf
from partyhelp_pipeline.clients import gcs_upload_retry, storage_client
from partyhelp_pipeline.errors import ExportIntegrityError, StorageUnavailableError, is_transient
from partyhelp_pipeline.settings import Settings

BLOCK_MAX_RAW_BYTES = 4 * 1024 * 1024  # BigQuery reads Avro blocks of up to 16 MB
UPLOAD_CHUNK_BYTES = 2 * 1024 * 1024  # resumable upload chunk (the library default: 100 MB)
SINGLE_REQUEST_MAX_BYTES = 1024 * 1024  # smaller parts go in one request


class PartStore(Protocol):
    """Where finished part files go: ``put`` stores the local file at ``path`` under ``name``
    (an object name below the export folder), removes the local file and describes the part.
    It is called from the uploader's background threads."""

    def put(self, name: str, path: str, rows: int, chunk: int) -> mf.PartInfo:
        """Store one finished part."""
        ...


class GcsPartStore:
    """The production store: create-only uploads to the export bucket, CRC32C-verified."""

    def __init__(self, settings: Settings) -> None:
        self._bucket = storage_client(settings).bucket(settings.gcs_bucket)
        self._retry = gcs_upload_retry(settings)

    def put(self, name: str, path: str, rows: int, chunk: int) -> mf.PartInfo:
        """Upload one part (see ``upload_part``)."""
        return upload_part(self._bucket, name, path, rows, chunk, self._retry)


PART_FOLDER_PREFIX = "partyhelp-export-"


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def remove_orphaned_part_folders(root: str | None = None) -> list[str]:
    """Remove local part folders left by export processes that no longer exist (a SIGKILL
    skips every cleanup); return what was removed. Folders are named after their process,
    so the temporary directory must not be shared across PID namespaces (containers)."""
    root = root or tempfile.gettempdir()
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(root):
            owner = entry.name.removeprefix(PART_FOLDER_PREFIX).split("-", 1)[0]
            if (entry.name.startswith(PART_FOLDER_PREFIX) and owner.isdigit()
                    and entry.is_dir(follow_symlinks=False) and not _process_exists(int(owner))):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry.path)
    return removed


class PartUploader:
    """Rolls encoded blocks into local part files and uploads each while the next is written."""

    def __init__(self, settings: Settings, folder: str, chunk: int, schema: dict[str, Any],
                 store: PartStore | None = None):
        self._settings = settings
        self._store = store if store is not None else GcsPartStore(settings)
        self._folder = folder
        self._chunk = chunk
        self._schema = schema
        self._token = secrets.token_hex(3)  # distinguishes this attempt's parts from a retry's
        remove_orphaned_part_folders()
        self._tmpdir = tempfile.TemporaryDirectory(prefix=f"{PART_FOLDER_PREFIX}{os.getpid()}-")
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="upload")
        self._pending: list[Future[mf.PartInfo]] = []
        self._sequence = 0
        self._file: Any = None
        self._writer: avro.AvroContainerWriter | None = None
        self._path = ""

    def _open(self) -> avro.AvroContainerWriter:
        self._path = os.path.join(self._tmpdir.name, f"part-{self._sequence:04d}.avro")
        self._file = open(self._path, "wb")  # noqa: SIM115 - closed in _roll
        self._writer = avro.AvroContainerWriter(self._file, self._schema, codec="deflate",
                                                compression_level=1)
        return self._writer

    def _roll(self) -> None:
        assert self._writer is not None
        self._file.close()
        for future in self._pending:  # an upload already failed: stop streaming now
            if future.done() and future.exception() is not None:
                future.result()
        name = (f"{self._folder}/part-{self._chunk:04d}-{self._sequence:04d}-"
                f"{self._token}.avro")
        self._pending.append(self._pool.submit(self._store.put, name, self._path,
                                               self._writer.records_written, self._chunk))
        self._sequence += 1
        self._writer = None

    def write_batch(self, encoded: avro.EncodedBatch) -> None:
        """Append an encoded batch as deflated blocks of at most ``BLOCK_MAX_RAW_BYTES``."""
        for start, stop in encoded.block_ranges(BLOCK_MAX_RAW_BYTES):
            self.write(stop - start, avro.compress_block(encoded.view_rows(start, stop), 1))

    def write(self, num_records: int, compressed: bytes) -> None:
        """Append one compressed block, starting a new part first when this one is full."""
        writer = self._writer or self._open()
        if writer.records_written and (
            writer.bytes_written + len(compressed) > self._settings.part_max_bytes
        ):
            self._roll()
            writer = self._open()
        writer.write_compressed_block(num_records, compressed)

    def finish(self) -> tuple[mf.PartInfo, ...]:
        """Close the last part, wait for every upload, and return the parts in order."""
        try:
            if self._writer is None and not self._pending:
                self._open()  # an empty chunk still gets one (empty) part
            if self._writer is not None:
                self._roll()
            return tuple(future.result() for future in self._pending)
        finally:
            self.close()

    def close(self) -> None:
        """Stop uploads and remove local files."""
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._tmpdir.cleanup()


def upload_part(bucket: Any, name: str, path: str, rows: int, chunk: int,
                retry: Retry) -> mf.PartInfo:
    """Upload one part create-only with a verified CRC32C, then delete the local file."""
    size = os.path.getsize(path)
    crc = mf.file_crc32c_base64(path)
    blob = bucket.blob(name, chunk_size=UPLOAD_CHUNK_BYTES)
    try:
        if size <= SINGLE_REQUEST_MAX_BYTES:
            blob.upload_from_filename(path, content_type="application/avro",
                                      if_generation_match=0, checksum="crc32c", retry=retry)
        else:
            # Size not given: a resumable upload, UPLOAD_CHUNK_BYTES at a time (given a size
            # under 8 MB, the library would build one multipart request of it in memory).
            with open(path, "rb") as data:
                blob.upload_from_file(data, content_type="application/avro",
                                      if_generation_match=0, checksum="crc32c", retry=retry)
    except gexc.PreconditionFailed:
        # Our own earlier request landed before its answer was lost: accept identical bytes.
        blob.reload()
        if blob.crc32c != crc or blob.size != size:
            raise ExportIntegrityError(f"a different object already exists at "
                                       f"gs://{bucket.name}/{name}") from None
    except Exception as exc:
        if not is_transient(exc):
            raise
        cause = exc.cause if isinstance(exc, gexc.RetryError) and exc.cause else exc
        raise StorageUnavailableError(
            f"GCS unavailable: the upload of gs://{bucket.name}/{name} gave up after "
            f"{retry.timeout:g} s of retries: {type(cause).__name__}: {cause}") from exc
    finally:
        with contextlib.suppress(OSError):
            os.remove(path)
    return mf.PartInfo(mf.gs_uri(bucket.name, name), rows, size, crc, chunk)
