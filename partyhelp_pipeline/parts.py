"""Avro parts into GCS: rolls encoded blocks into part files and streams each into GCS
while it is written, create-only and CRC32C-verified.

A part is written to a local file (its bytes stay there until the upload is final, so a
failed request can be sent again) and, as it grows, sent through a resumable upload
session in pieces of ``UPLOAD_CHUNK_BYTES`` (a multiple of the 256 KiB GCS requires). Its
CRC32C is computed as the blocks are written. GCS makes the object visible only when the
last piece arrives, so a part is never half-visible; it is listed by a manifest only once
its upload is final and GCS's size and CRC32C equal ours.
"""

from __future__ import annotations

import base64
import contextlib
import os
import random
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO, Protocol, cast, runtime_checkable

import google_crc32c
import requests
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry

from partyhelp_pipeline import avro_encoding as avro
from partyhelp_pipeline import manifest as mf
from partyhelp_pipeline.clients import gcs_upload_retry, storage_client
from partyhelp_pipeline.errors import ExportIntegrityError, StorageUnavailableError, is_transient
from partyhelp_pipeline.settings import Settings

BLOCK_MAX_RAW_BYTES = 4 * 1024 * 1024  # BigQuery reads Avro blocks of up to 16 MB
# A piece of a resumable upload: a multiple of 256 KiB, as GCS requires of every piece but
# the last, and the 8 MiB GCS recommends (each request costs the server: fake-gcs-server spends
# half the CPU on 8 MiB pieces it spends on 2 MiB ones). Pieces stream from the part file, so
# their size costs no memory; the last piece is sent when the part closes.
UPLOAD_CHUNK_BYTES = 8 * 1024 * 1024
SEND_BLOCK_BYTES = 256 * 1024  # what one read of a piece's body returns to the HTTP client
SINGLE_REQUEST_MAX_BYTES = 1024 * 1024  # a part closed at most this big goes in one request
REQUEST_TIMEOUT_SECONDS = 60  # one HTTP request to GCS (the storage library's default)


class PartStore(Protocol):
    """Where finished part files go: ``put`` stores the local file at ``path`` under ``name``
    (an object name below the export folder), removes the local file and describes the part.
    It is called from the uploader's background threads."""

    def put(self, name: str, path: str, rows: int, chunk: int) -> mf.PartInfo:
        """Store one finished part."""
        ...


class PartFile:
    """A part file being written: its bytes so far (flushed, so another thread can read
    them), their CRC32C, and whether the part is closed. The Avro writer writes into it;
    a streaming upload follows it from another thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.rows = 0
        self._file = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._checksum = google_crc32c.Checksum()
        self._written = 0  # bytes written, not all flushed yet
        self._size = 0  # bytes flushed: readable from the file
        self._closed = False
        self._aborted = False
        self._changed = threading.Condition()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` (the Avro writer's file interface)."""
        self._file.write(data)
        # google_crc32c takes only read-only buffers (bytes), not memoryviews.
        self._checksum.update(data if isinstance(data, bytes) else bytes(data))
        self._written += len(data)

    def publish(self) -> None:
        """Flush what was written and wake the upload that follows this part."""
        self._file.flush()
        with self._changed:
            self._size = self._written
            self._changed.notify_all()

    def close(self, rows: int) -> None:
        """The part is complete with ``rows`` records."""
        self._file.close()
        with self._changed:
            self.rows, self._size, self._closed = rows, self._written, True
            self._changed.notify_all()

    def abort(self) -> None:
        """Stop the upload that follows this part (the export failed)."""
        with contextlib.suppress(Exception):
            self._file.close()
        with self._changed:
            self._aborted = True
            self._changed.notify_all()

    def wait_for(self, size: int) -> tuple[int, bool]:
        """Block until ``size`` bytes are readable or the part is closed; return the readable
        size and whether the part is closed."""
        with self._changed:
            self._changed.wait_for(lambda: self._size >= size or self._closed or self._aborted)
            if self._aborted:
                raise PartAborted(self.path)
            return self._size, self._closed

    @property
    def size(self) -> int:
        """Bytes readable so far (all of them once closed)."""
        return self._size

    def crc32c_base64(self) -> str:
        """CRC32C of the whole (closed) part, as GCS reports it."""
        return base64.b64encode(self._checksum.digest()).decode("ascii")


class PartAborted(Exception):
    """The part's export failed before the part was complete: its upload stops."""


@runtime_checkable
class StreamingPartStore(Protocol):
    """A store that takes a part while it is written: ``stream`` follows ``part`` until it is
    closed, stores it under ``name``, removes the local file and describes the part."""

    def stream(self, name: str, part: PartFile, chunk: int) -> mf.PartInfo:
        """Store one part as it is written."""
        ...


class GcsPartStore:
    """The production store: create-only uploads to the export bucket, CRC32C-verified,
    streamed while the part is written."""

    def __init__(self, settings: Settings) -> None:
        self._bucket = storage_client(settings).bucket(settings.gcs_bucket)
        self._retry = gcs_upload_retry(settings)

    def stream(self, name: str, part: PartFile, chunk: int) -> mf.PartInfo:
        """Upload one part while it is written (see ``StreamingUpload``)."""
        return StreamingUpload(self._bucket, name, part, self._retry).run(chunk)


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
            if (
                entry.name.startswith(PART_FOLDER_PREFIX)
                and owner.isdigit()
                and entry.is_dir(follow_symlinks=False)
                and not _process_exists(int(owner))
            ):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry.path)
    return removed


class PartUploader:
    """Rolls encoded blocks into local part files; each is uploaded while it is written (a
    ``StreamingPartStore``) or as soon as it is complete (any other ``PartStore``), while
    the next is written."""

    def __init__(
        self,
        settings: Settings,
        folder: str,
        chunk: int,
        schema: dict[str, Any],
        store: PartStore | StreamingPartStore | None = None,
    ):
        self._settings = settings
        self._store = store if store is not None else GcsPartStore(settings)
        self._folder = folder
        self._chunk = chunk
        self._schema = schema
        self._token = secrets.token_hex(3)  # distinguishes this attempt's parts from a retry's
        remove_orphaned_part_folders()
        self._tmpdir = tempfile.TemporaryDirectory(prefix=f"{PART_FOLDER_PREFIX}{os.getpid()}-")
        # Streaming: one worker follows the part being written, the other finishes the last
        # piece of the part before it.
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="upload")
        self._pending: list[Future[mf.PartInfo]] = []
        self._sequence = 0
        self._part: PartFile | None = None
        self._writer: avro.AvroContainerWriter | None = None
        self._parts: list[PartFile] = []

    def _name(self) -> str:
        return f"{self._folder}/part-{self._chunk:04d}-{self._sequence:04d}-{self._token}.avro"

    def _open(self) -> avro.AvroContainerWriter:
        path = os.path.join(self._tmpdir.name, f"part-{self._sequence:04d}.avro")
        self._part = PartFile(path)
        self._parts.append(self._part)
        self._writer = avro.AvroContainerWriter(
            cast(BinaryIO, self._part), self._schema, codec="deflate", compression_level=1
        )
        if isinstance(self._store, StreamingPartStore):
            self._pending.append(
                self._pool.submit(self._store.stream, self._name(), self._part, self._chunk)
            )
        return self._writer

    def _raise_failed_upload(self) -> None:
        """An upload already failed: stop streaming now instead of reading on."""
        for future in self._pending:
            if future.done() and future.exception() is not None:
                future.result()

    def _roll(self) -> None:
        assert self._writer is not None and self._part is not None
        self._part.close(self._writer.records_written)
        self._raise_failed_upload()
        if not isinstance(self._store, StreamingPartStore):
            self._pending.append(
                self._pool.submit(
                    self._store.put, self._name(), self._part.path, self._part.rows, self._chunk
                )
            )
        self._sequence += 1
        self._writer = self._part = None

    def write_batch(self, encoded: avro.EncodedBatch) -> None:
        """Append an encoded batch as deflated blocks of at most ``BLOCK_MAX_RAW_BYTES``."""
        for start, stop in encoded.block_ranges(BLOCK_MAX_RAW_BYTES):
            self.write(stop - start, avro.compress_block(encoded.view_rows(start, stop), 1))
        if self._part is not None:
            self._part.publish()
            self._raise_failed_upload()

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
        for part in self._parts:
            part.abort()  # no effect on a part already uploaded
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._tmpdir.cleanup()


class _FileSlice:
    """``length`` bytes of a file from ``offset``, as a request body read a block at a time
    (so a piece is never held whole in memory); ``len`` gives the Content-Length."""

    def __init__(self, descriptor: int, offset: int, length: int) -> None:
        self._descriptor, self._position, self._end = descriptor, offset, offset + length

    def __len__(self) -> int:
        return self._end - self._position

    def read(self, size: int = -1) -> bytes:
        """The next block (at least ``SEND_BLOCK_BYTES`` when that many are left)."""
        wanted = len(self) if size is None or size < 0 else max(size, SEND_BLOCK_BYTES)
        data = os.pread(self._descriptor, min(wanted, len(self)), self._position)
        self._position += len(data)
        return data


# The storage library's own mapping of an HTTP answer to its exception (412 ->
# PreconditionFailed, 503 -> ServiceUnavailable, ...); typed here, the library is not.
_http_error: Callable[[Any], Exception] = gexc.from_http_response


class SessionLostError(StorageUnavailableError):
    """GCS no longer knows the upload session (expired, or an emulator restarted): the part
    is sent again from its first byte, in a new session."""


class StreamingUpload:
    """One part sent to GCS while it is written, through a resumable upload session.

    The session is created create-only (``ifGenerationMatch=0``) by the storage client's
    public ``create_resumable_upload_session``; its URL authorises the pieces by itself (as
    GCS documents), so they go through a plain HTTP session. The object appears only when
    the last piece arrives, whole. A failed request (lost connection, 5xx, 429, a lost
    session) restarts the part in a new session from its local file; GCS never finalises
    an abandoned session, so nothing partial is ever visible. Failures retry with backoff
    for ``retry.timeout`` seconds without progress, then give up.
    """

    def __init__(self, bucket: Any, name: str, part: PartFile, retry: Retry) -> None:
        self._bucket, self._name, self._part = bucket, name, part
        self._retry = retry
        self._window = float(retry.timeout or 120)
        self._failing_since: float | None = None
        self.persisted = 0  # bytes GCS has acknowledged in the current session
        self.failures = 0  # failed requests so far (each restarts the part)

    def run(self, chunk: int) -> mf.PartInfo:
        """Follow the part until it is closed and stored; return its description."""
        part = self._part
        size, closed = part.wait_for(SINGLE_REQUEST_MAX_BYTES + 1)
        if closed and size <= SINGLE_REQUEST_MAX_BYTES:  # small: one request is cheaper
            return upload_part(self._bucket, self._name, part.path, part.rows, chunk, self._retry)
        try:
            stored = self._send_with_retries()
        finally:
            with contextlib.suppress(OSError):
                os.remove(part.path)
        size, crc = part.size, part.crc32c_base64()
        if int(stored.get("size", -1)) != size or stored.get("crc32c") != crc:
            raise ExportIntegrityError(
                f"gs://{self._bucket.name}/{self._name} was stored with size "
                f"{stored.get('size')} and crc32c {stored.get('crc32c')}, not {size} and {crc}"
            )
        return mf.PartInfo(mf.gs_uri(self._bucket.name, self._name), part.rows, size, crc, chunk)

    def _send_with_retries(self) -> dict[str, Any]:
        delay = 1.0
        while True:
            try:
                return self._send()
            except gexc.PreconditionFailed:
                return self._existing()
            except PartAborted:
                raise
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self.failures += 1
                now = time.monotonic()
                self._failing_since = self._failing_since or now
                left = self._window - (now - self._failing_since)
                if left <= 0:
                    raise StorageUnavailableError(
                        f"GCS unavailable: the upload of gs://{self._bucket.name}/{self._name} "
                        f"gave up after {self._window:g} s of retries: "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
                time.sleep(min(left, delay * random.uniform(0.5, 1.0)))
                delay = min(delay * 2, 10.0)

    def _send(self) -> dict[str, Any]:
        """One session: every piece from the first byte; returns the stored object."""
        url = self._bucket.blob(self._name).create_resumable_upload_session(
            content_type="application/avro",
            if_generation_match=0,
            checksum=None,
            retry=None,
            timeout=REQUEST_TIMEOUT_SECONDS,
        )
        offset = self.persisted = 0
        descriptor = os.open(self._part.path, os.O_RDONLY)
        try:
            with requests.Session() as http:
                while True:
                    size, closed = self._part.wait_for(offset + UPLOAD_CHUNK_BYTES)
                    if closed and size - offset <= UPLOAD_CHUNK_BYTES:
                        stored: dict[str, Any] = self._put(
                            http, url, descriptor, offset, size - offset, size
                        )
                        return stored
                    offset = self.persisted = self._put(
                        http, url, descriptor, offset, UPLOAD_CHUNK_BYTES, None
                    )
        finally:
            os.close(descriptor)

    def _put(
        self,
        http: requests.Session,
        url: str,
        descriptor: int,
        offset: int,
        length: int,
        total: int | None,
    ) -> Any:
        """Send ``length`` bytes from ``offset``; the last piece (``total`` given) returns
        the stored object, any other the offset GCS has persisted up to."""
        data = _FileSlice(descriptor, offset, length)
        span = f"{offset}-{offset + length - 1}" if length else "*"
        headers = {"Content-Range": f"bytes {span}/{'*' if total is None else total}"}
        if total is not None:  # GCS checks the whole object against it before creating it
            headers["X-Goog-Hash"] = f"crc32c={self._part.crc32c_base64()}"
        response = http.put(url, data=data, headers=headers, timeout=REQUEST_TIMEOUT_SECONDS)
        status = response.status_code
        if status in (404, 410):
            raise SessionLostError(f"upload session of {self._name} lost ({status})")
        if total is None and status == 308:
            self._failing_since = None  # progress: a new outage gets a whole window
            persisted = response.headers.get("Range", "")  # "bytes=0-N"; none: nothing yet
            return int(persisted.rsplit("-", 1)[1]) + 1 if persisted else 0
        if total is not None and status in (200, 201):
            return response.json()
        raise _http_error(response)

    def _existing(self) -> dict[str, Any]:
        """The object already exists: our own earlier request landed before its answer was
        lost. Identical bytes are accepted; anything else is an error."""
        blob = self._bucket.get_blob(self._name)
        if blob is None or blob.crc32c != self._part.crc32c_base64():
            raise ExportIntegrityError(
                f"a different object already exists at gs://{self._bucket.name}/{self._name}"
            ) from None
        return {"size": blob.size, "crc32c": blob.crc32c}


def upload_part(
    bucket: Any, name: str, path: str, rows: int, chunk: int, retry: Retry
) -> mf.PartInfo:
    """Upload one part create-only with a verified CRC32C, then delete the local file."""
    size = os.path.getsize(path)
    crc = mf.file_crc32c_base64(path)
    blob = bucket.blob(name, chunk_size=UPLOAD_CHUNK_BYTES)
    try:
        if size <= SINGLE_REQUEST_MAX_BYTES:
            blob.upload_from_filename(
                path,
                content_type="application/avro",
                if_generation_match=0,
                checksum="crc32c",
                retry=retry,
            )
        else:
            # Size not given: a resumable upload, UPLOAD_CHUNK_BYTES at a time (given a size
            # under 8 MB, the library would build one multipart request of it in memory).
            with open(path, "rb") as data:
                blob.upload_from_file(
                    data,
                    content_type="application/avro",
                    if_generation_match=0,
                    checksum="crc32c",
                    retry=retry,
                )
    except gexc.PreconditionFailed:
        # Our own earlier request landed before its answer was lost: accept identical bytes.
        blob.reload()
        if blob.crc32c != crc or blob.size != size:
            raise ExportIntegrityError(
                f"a different object already exists at gs://{bucket.name}/{name}"
            ) from None
    except Exception as exc:
        if not is_transient(exc):
            raise
        cause = exc.cause if isinstance(exc, gexc.RetryError) and exc.cause else exc
        raise StorageUnavailableError(
            f"GCS unavailable: the upload of gs://{bucket.name}/{name} gave up after "
            f"{retry.timeout:g} s of retries: {type(cause).__name__}: {cause}"
        ) from exc
    finally:
        with contextlib.suppress(OSError):
            os.remove(path)
    return mf.PartInfo(mf.gs_uri(bucket.name, name), rows, size, crc, chunk)
