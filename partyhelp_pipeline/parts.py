"""Avro parts into GCS: rolls encoded blocks into part files and streams each into GCS
while it is written, create-only and CRC32C-verified.

A part is written to a local file (its bytes stay there until the upload is final, so a
lost upload session can start again) and, as it grows, fed to the storage library's
resumable upload (``BlobWriter``), which sends it in pieces of ``UPLOAD_CHUNK_BYTES``,
retries each request, and sends the CRC32C with the last piece. Ours is computed as the
blocks are written. GCS makes the object visible only when the last piece arrives, so a
part is never half-visible; it is listed by a manifest only once its upload is final and
GCS's size and CRC32C equal ours.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO, Protocol, cast, runtime_checkable

import google_crc32c
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud.storage.exceptions import DataCorruption, InvalidResponse
from google.cloud.storage.fileio import BlobWriter

from partyhelp_pipeline import avro_encoding as avro
from partyhelp_pipeline import manifest as mf
from partyhelp_pipeline.errors import ExportIntegrityError, StorageUnavailableError, is_transient

BLOCK_MAX_RAW_BYTES = 4 * 1024 * 1024  # BigQuery reads Avro blocks of up to 16 MB
# A piece of a resumable upload: a multiple of 256 KiB, as GCS requires of every piece but
# the last. The library's writer holds about two pieces at once (its buffer, and the piece
# read from it to send): 4 MiB pieces keep the export's peak 12 MB lower than 8 MiB ones,
# for ~0.2 s more of fake-gcs-server's CPU per 70 MB (docs/BENCHMARKS.md, issue 22); at
# ~12 MB/s of Avro per chunk, a piece leaves every ~0.3 s, far within a request's round trip.
# The last piece is sent when the part closes.
UPLOAD_CHUNK_BYTES = 4 * 1024 * 1024
FEED_BLOCK_BYTES = 1024 * 1024  # one read of the part file, handed to the writer
SINGLE_REQUEST_MAX_BYTES = 1024 * 1024  # a part closed at most this big goes in one request


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

    def __init__(self, bucket: Any, retry: Retry) -> None:
        self._bucket = bucket
        self._retry = retry

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
        store: PartStore | StreamingPartStore,
        part_max_bytes: int,
        folder: str,
        chunk: int,
        schema: dict[str, Any],
    ):
        self._store = store
        self._part_max_bytes = part_max_bytes
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
            writer.bytes_written + len(compressed) > self._part_max_bytes
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


class _PartWriter(BlobWriter):  # type: ignore[misc]  # the storage library is untyped
    """The library's ``BlobWriter``, except when it is garbage-collected unclosed: ``io``
    closes such an object, and closing a BlobWriter finalises its upload, which would make
    the truncated part of a failed export visible. Dropped, its session stays unfinished
    (GCS never finalises one, and forgets it after a week)."""

    def __del__(self) -> None:
        """Left unfinished: see the class."""


# The storage library's own mapping of an HTTP answer to its exception (412 ->
# PreconditionFailed, 503 -> ServiceUnavailable, ...), for the answers its resumable upload
# raises unmapped (``InvalidResponse``); typed here, the library is not.
_http_error: Callable[[Any], Exception] = gexc.from_http_response
_SESSION_LOST = (404, 410)  # GCS no longer knows the session: expired, or an emulator restarted


class StreamingUpload:
    """One part sent to GCS while it is written, by the storage library's resumable upload
    (``BlobWriter``): create-only (``if_generation_match=0``), each piece's request retried
    by ``retry``, the CRC32C sent with the last piece (GCS refuses an object that does not
    match it) and checked against GCS's answer. The object appears only when the last piece
    arrives, whole. A lost session restarts the part in a new one from its local file; a
    session lost again before any piece of it got through gives up.
    """

    def __init__(self, bucket: Any, name: str, part: PartFile, retry: Retry) -> None:
        self._bucket, self._name, self._part, self._retry = bucket, name, part, retry
        self.persisted = 0  # bytes GCS has acknowledged in the current session
        self.restarts = 0  # sessions lost, each restarting the part from its first byte

    def run(self, chunk: int) -> mf.PartInfo:
        """Follow the part until it is closed and stored; return its description."""
        part = self._part
        size, closed = part.wait_for(SINGLE_REQUEST_MAX_BYTES + 1)
        if closed and size <= SINGLE_REQUEST_MAX_BYTES:  # small: one request is cheaper
            return upload_part(self._bucket, self._name, part.path, part.rows, chunk, self._retry)
        try:
            stored = self._store()
        finally:
            with contextlib.suppress(OSError):
                os.remove(part.path)
        size, crc = part.size, part.crc32c_base64()
        if stored is None or (stored.size, stored.crc32c) != (size, crc):
            found = "nothing" if stored is None else f"size {stored.size}, crc32c {stored.crc32c}"
            raise ExportIntegrityError(
                f"gs://{self._bucket.name}/{self._name} holds {found}, not {size} and {crc}"
            )
        return mf.PartInfo(mf.gs_uri(self._bucket.name, self._name), part.rows, size, crc, chunk)

    def _store(self) -> Any:
        """Send the part; the stored object, as GCS describes it (or None)."""
        try:
            self._send_with_restarts()
            return self._bucket.get_blob(self._name, retry=self._retry)
        except gexc.PreconditionFailed:
            return self._existing()
        except DataCorruption as exc:  # GCS's CRC32C is not the library's (args: answer, text)
            raise ExportIntegrityError(
                f"gs://{self._bucket.name}/{self._name}: {exc.args[-1]}"
            ) from exc
        except Exception as exc:
            unavailable = storage_unavailable(exc, self._bucket.name, self._name, self._retry)
            if unavailable is None:
                raise
            raise unavailable from exc

    def _send_with_restarts(self) -> None:
        lost_in_a_row = 0
        while True:
            try:
                return self._send()
            except InvalidResponse as exc:
                lost_in_a_row = 1 if self.persisted else lost_in_a_row + 1
                if exc.response.status_code not in _SESSION_LOST or lost_in_a_row > 1:
                    raise _http_error(exc.response) from exc
                self.restarts += 1

    def _send(self) -> None:
        """One session: the part from its first byte, fed to the library's writer as it
        grows (each whole piece goes out inside ``write``), closed with the last piece."""
        writer = _PartWriter(
            self._bucket.blob(self._name),
            chunk_size=UPLOAD_CHUNK_BYTES,
            retry=self._retry,
            if_generation_match=0,
            checksum="crc32c",
            content_type="application/avro",
        )
        self.persisted = fed = 0
        with open(self._part.path, "rb", buffering=0) as source:
            while True:
                size, closed = self._part.wait_for(fed + UPLOAD_CHUNK_BYTES)
                while fed < size:
                    block = source.read(min(size - fed, FEED_BLOCK_BYTES))
                    writer.write(block)
                    fed += len(block)
                    self.persisted = fed - fed % UPLOAD_CHUNK_BYTES
                if closed:
                    writer.close()
                    return

    def _existing(self) -> Any:
        """The object already exists: our own earlier request landed before its answer was
        lost. Identical bytes are accepted; anything else is an error."""
        blob = self._bucket.get_blob(self._name, retry=self._retry)
        if blob is None or blob.crc32c != self._part.crc32c_base64():
            raise ExportIntegrityError(
                f"a different object already exists at gs://{self._bucket.name}/{self._name}"
            ) from None
        return blob


def storage_unavailable(
    exc: Exception, bucket: str, name: str, retry: Retry
) -> StorageUnavailableError | None:
    """``exc`` as the sync's error when a retry can heal it (the library's retries gave up
    on a lost connection, a 5xx, a 429); None for any other failure."""
    cause = exc.cause if isinstance(exc, gexc.RetryError) and exc.cause else exc
    if isinstance(cause, InvalidResponse):  # an answer the upload raised unmapped
        cause = _http_error(cause.response)
    if not is_transient(cause):
        return None
    return StorageUnavailableError(
        f"GCS unavailable: the upload of gs://{bucket}/{name} gave up after "
        f"{retry.timeout:g} s of retries: {type(cause).__name__}: {cause}"
    )


def upload_part(
    bucket: Any, name: str, path: str, rows: int, chunk: int, retry: Retry
) -> mf.PartInfo:
    """Upload one small part in one request, create-only with a verified CRC32C, then delete
    the local file."""
    size = os.path.getsize(path)
    crc = mf.file_crc32c_base64(path)
    blob = bucket.blob(name)
    try:
        blob.upload_from_filename(
            path,
            content_type="application/avro",
            if_generation_match=0,
            checksum="crc32c",
            retry=retry,
        )
    except gexc.PreconditionFailed:
        # Our own earlier request landed before its answer was lost: accept identical bytes.
        blob.reload(retry=retry)
        if blob.crc32c != crc or blob.size != size:
            raise ExportIntegrityError(
                f"a different object already exists at gs://{bucket.name}/{name}"
            ) from None
    except Exception as exc:
        unavailable = storage_unavailable(exc, bucket.name, name, retry)
        if unavailable is None:
            raise
        raise unavailable from exc
    finally:
        with contextlib.suppress(OSError):
            os.remove(path)
    return mf.PartInfo(mf.gs_uri(bucket.name, name), rows, size, crc, chunk)
