"""MySQL -> Avro parts in GCS -> manifest: the export of one reporting table.

An export is planned once (its id and its deterministic primary-key chunks), each
chunk is streamed in its own consistent snapshot into Avro parts that upload while
the next part is written, and a manifest is committed last, only when every chunk's
rows and money sums equal the source's aggregates from the same snapshot.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import queue
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import pyarrow as pa
from google.api_core import exceptions as gexc

from tasks import avro_encoding as avro
from tasks import manifest as mf
from tasks.batches import BatchContext, QualityCounts, convert_columns, to_columns
from tasks.clients import gcs_upload_retry, storage_client
from tasks.errors import (
    ExportIntegrityError,
    ReconciliationError,
    SourceUnavailableError,
    StorageUnavailableError,
    is_transient,
)
from tasks.logs import get_logger
from tasks.settings import Settings
from tasks.source import (
    TRANSIENT_MYSQL_ERRORS,
    IdRange,
    check_schema,
    describe_source,
    fetch_one,
    is_driver_error,
    mysql_error_code,
    plan_chunks,
    raise_drift,
    schema_problems,
    snapshot,
    stream_rows,
)
from tasks.specs import TableSpec

BLOCK_MAX_RAW_BYTES = 4 * 1024 * 1024  # BigQuery reads Avro blocks of up to 16 MB
# A batch holds about this many bytes of encoded Avro: its rows as Python objects take ~6x
# that, its encoding ~5x, so memory stays flat whatever the row width or the table size
# (larger batches save little CPU: the per-batch work is a few hundred numpy/Arrow calls).
BATCH_TARGET_BYTES = 512 * 1024
FIRST_BATCH_ROWS = 1_000  # until the row width is known
UPLOAD_CHUNK_BYTES = 2 * 1024 * 1024  # resumable upload chunk (the library default: 100 MB)
SINGLE_REQUEST_MAX_BYTES = 1024 * 1024  # smaller parts go in one request

# Arrow's default allocator (mimalloc) keeps the pages of freed batches; the system one
# gives large blocks back at once: ~12 MB less at peak for the export, at the same speed.
# An explicit ARROW_DEFAULT_MEMORY_POOL still wins.
if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
    pa.set_memory_pool(pa.system_memory_pool())


@dataclass(frozen=True)
class ExportPlan:
    """One export attempt of one table: its id and its chunks (stable across retries)."""

    table: str
    sync_date: str
    export_id: str
    flow_run_id: str | None
    planned_at: str
    chunks: tuple[tuple[int, int], ...]
    replaces: str | None = None  # a damaged export of this run that this one redoes

    def chunk(self, index: int) -> IdRange:
        """The id range of chunk ``index``."""
        first, last = self.chunks[index]
        return IdRange(first, last)


@dataclass(frozen=True)
class ChunkResult:
    """What one chunk export wrote, and what the source said it should hold."""

    index: int
    first_id: int
    last_id: int
    rows: int
    parts: tuple[mf.PartInfo, ...]
    source_totals: dict[str, int]
    exported_totals: dict[str, int]
    quality: dict[str, Any]
    started_at: str
    finished_at: str
    driver: str


def utc_now() -> dt.datetime:
    """The current time, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


def iso(moment: dt.datetime) -> str:
    """ISO 8601 in UTC with a ``Z``."""
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def check_source_schema(settings: Settings, specs: Sequence[TableSpec]) -> None:
    """Fail before anything is written if a spec reads a column the source lacks or cannot
    carry exactly; the error names every such table and column."""
    with snapshot(settings.mysql) as connection:
        source = describe_source(connection, settings.mysql.database)
    raise_drift([problem for spec in specs for problem in schema_problems(spec, source)])


def plan_export(settings: Settings, spec: TableSpec, sync_date: dt.date,
                flow_run_id: str | None, replaces: str | None = None) -> ExportPlan:
    """Fix the export id and the primary-key chunks of one table (``replaces``: the id of a
    damaged export that this one redoes, recorded in its manifest)."""
    with snapshot(settings.mysql) as connection:
        chunks = plan_chunks(connection, spec.source_table, settings.chunk_rows)
    planned = utc_now()
    run = (flow_run_id or "local").split("-")[0][:8]
    export_id = f"{planned:%Y%m%dT%H%M%S}Z-{run}-{secrets.token_hex(2)}"
    return ExportPlan(spec.name, sync_date.isoformat(), export_id, flow_run_id, iso(planned),
                      chunks, replaces)


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

    def put(self, name: str, path: str, rows: int, chunk: int) -> mf.PartInfo:
        """Upload one part (see ``upload_part``)."""
        return upload_part(self._bucket, name, path, rows, chunk)


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


def upload_part(bucket: Any, name: str, path: str, rows: int, chunk: int) -> mf.PartInfo:
    """Upload one part create-only with a verified CRC32C, then delete the local file."""
    size = os.path.getsize(path)
    crc = mf.file_crc32c_base64(path)
    blob = bucket.blob(name, chunk_size=UPLOAD_CHUNK_BYTES)
    retry = gcs_upload_retry()
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


class BatchSizer:
    """Rows to fetch next: ``BATCH_TARGET_BYTES`` of encoded Avro at the width seen so far,
    at most ``max_rows`` (``PARTYHELP_BATCH_ROWS``). Read by the reader thread, updated by
    the encoding one."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self.rows = min(max_rows, FIRST_BATCH_ROWS)

    def __call__(self) -> int:
        return self.rows

    def observe(self, rows: int, encoded_bytes: int) -> None:
        """Re-size from a batch just encoded."""
        if rows:
            width = max(1, encoded_bytes // rows)
            self.rows = max(1, min(self.max_rows, BATCH_TARGET_BYTES // width))


def _prefetch(batches: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """Read the next batches in a thread while this one is encoded (the driver waits on
    the network without the GIL)."""
    buffer: queue.Queue[Any] = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in batches:
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(done)
        except BaseException as exc:  # handed to the consumer, which raises it
            buffer.put(exc)

    thread = threading.Thread(target=produce, name="mysql-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=30)


def _wrap_source_errors(exc: BaseException, spec: TableSpec) -> BaseException:
    if is_driver_error(exc):
        code = mysql_error_code(exc)
        transient = code in TRANSIENT_MYSQL_ERRORS
        kind = SourceUnavailableError if transient else ExportIntegrityError
        return kind(f"{spec.name}: MySQL error {code} while exporting: {exc.args[-1]}",
                    transient=transient, table=spec.name)
    return exc


def export_chunk(settings: Settings, spec: TableSpec, plan: ExportPlan, index: int,
                 logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
                 store: PartStore | None = None) -> ChunkResult:
    """Stream one chunk of ``spec`` into Avro parts in GCS (or ``store``), inside one
    consistent snapshot."""
    log = logger or get_logger()
    chunk = plan.chunk(index)
    sync_date = dt.date.fromisoformat(plan.sync_date)
    params = {"first_id": chunk.first_id, "last_id": chunk.last_id,
              "include_pii": int(settings.include_pii_hashes)}
    salt = settings.pii_salt.get_secret_value().encode() if settings.pii_salt else None
    context = BatchContext(spec, spec.output_columns(settings.include_pii_hashes), sync_date,
                           salt)
    fields = [c.avro_field() for c in context.columns]
    quality = QualityCounts()
    exported = {c.name: 0 for c in spec.money_columns}
    started = utc_now()
    folder = mf.export_folder(settings.gcs_prefix, sync_date, spec.name, plan.export_id)
    uploader = PartUploader(settings, folder, index, spec.avro_schema(settings.include_pii_hashes),
                            store)
    rows = 0
    last_report = time.monotonic()
    try:
        with snapshot(settings.mysql) as connection:
            # The run checked the schema at its start; a migration deployed since must fail
            # here, before this chunk writes anything, instead of turning values into NULL.
            # (A change after this check fails the reads below with error 1412: retried.)
            check_schema(spec, describe_source(connection, settings.mysql.database))
            totals = fetch_one(connection, spec.totals_query, params)
            sizer = BatchSizer(settings.batch_rows)
            batches = stream_rows(connection, settings.mysql.driver, spec.query, params, sizer)
            # The reader thread also turns each batch into Arrow columns at once, so only
            # the batch being read exists as Python objects: memory stays flat and small.
            columns = (to_columns(context, names, batch) for names, batch in batches)
            for source_columns in _prefetch(columns):
                converted = convert_columns(context, source_columns, quality)
                encoded = avro.encode_records(fields, converted.arrays)
                sizer.observe(encoded.num_rows, encoded.nbytes)
                for start, stop in _block_bounds(encoded):
                    uploader.write(stop - start, avro.compress_block(
                        encoded.slice_rows(start, stop), 1))
                rows += converted.num_rows
                for name, cents in converted.money_cents.items():
                    exported[name] += cents
                if time.monotonic() - last_report >= settings.progress_seconds:
                    elapsed = (utc_now() - started).total_seconds()
                    log.info("export-%s chunk %d: %d rows so far, %.0f rows/s", spec.name,
                             index, rows, rows / max(elapsed, 1e-9))
                    last_report = time.monotonic()
        parts = uploader.finish()
    except BaseException as exc:
        uploader.close()
        wrapped = _wrap_source_errors(exc, spec)
        if wrapped is exc:
            raise
        raise wrapped from None
    source_totals = {k: int(v or 0) for k, v in totals.items()}
    result = ChunkResult(index, chunk.first_id, chunk.last_id, rows, parts, source_totals,
                         exported, quality.to_dict(), iso(started), iso(utc_now()),
                         settings.mysql.driver)
    check_chunk(spec, result)
    return result


def _block_bounds(encoded: avro.EncodedBatch) -> Iterator[tuple[int, int]]:
    """Row ranges of ``encoded`` whose raw size stays under ``BLOCK_MAX_RAW_BYTES``."""
    offsets = encoded.row_offsets
    start = 0
    while start < encoded.num_rows:
        limit = offsets[start] + BLOCK_MAX_RAW_BYTES
        # the last row that still ends within the limit; at least one row per block
        stop = int(offsets.searchsorted(limit, side="right")) - 1
        stop = max(stop, start + 1)
        stop = min(stop, encoded.num_rows)
        yield start, stop
        start = stop


def check_chunk(spec: TableSpec, result: ChunkResult) -> None:
    """The chunk's rows and money sums must equal the source aggregates of its snapshot."""
    expected_rows = result.source_totals.get("row_count", 0)
    if result.rows != expected_rows:
        raise ReconciliationError(
            f"{spec.name}: chunk {result.index} (ids {result.first_id}..{result.last_id}) "
            f"exported {result.rows} rows but the source counted {expected_rows}",
            table=spec.name)
    for name, cents in result.exported_totals.items():
        if cents != result.source_totals.get(name, 0):
            raise ReconciliationError(
                f"{spec.name}: chunk {result.index} sum of {name} is {cents / 100:.2f} in the "
                f"export but {result.source_totals.get(name, 0) / 100:.2f} in the source",
                table=spec.name, column=name)


def commit_manifest(settings: Settings, spec: TableSpec, plan: ExportPlan,
                    chunks: Sequence[ChunkResult]) -> mf.Manifest:
    """Write the manifest of a complete export; from then on it is loadable and kept."""
    ordered = sorted(chunks, key=lambda c: c.index)
    if [c.index for c in ordered] != list(range(len(plan.chunks))):
        raise ExportIntegrityError(f"{spec.name}: export {plan.export_id} is missing chunks",
                                   table=spec.name)
    quality = QualityCounts()
    source_totals: dict[str, int] = {}
    exported_totals: dict[str, int] = {}
    for chunk in ordered:
        quality.merge(QualityCounts.from_dict(chunk.quality))
        for key, value in chunk.source_totals.items():
            source_totals[key] = source_totals.get(key, 0) + value
        for key, value in chunk.exported_totals.items():
            exported_totals[key] = exported_totals.get(key, 0) + value
    parts = [part for chunk in ordered for part in chunk.parts]
    manifest = mf.Manifest(
        table=spec.name,
        sync_date=plan.sync_date,
        export_id=plan.export_id,
        flow_run_id=plan.flow_run_id,
        extracted_at=min(c.started_at for c in ordered),
        completed_at=iso(utc_now()),
        parts=parts,
        rows=sum(c.rows for c in ordered),
        bytes=sum(p.bytes for p in parts),
        source_totals=source_totals,
        exported_totals=exported_totals,
        quality=quality.to_dict(),
        chunks=[{k: v for k, v in asdict(c).items() if k not in ("parts", "quality")}
                for c in ordered],
        avro_schema=spec.avro_schema(settings.include_pii_hashes),
        bigquery_schema=spec.bigquery_schema(settings.include_pii_hashes),
        driver=ordered[0].driver if ordered else settings.mysql.driver,
        replaces=plan.replaces,
    )
    folder = mf.export_folder(settings.gcs_prefix, dt.date.fromisoformat(plan.sync_date),
                              spec.name, plan.export_id)
    manifest.uri = mf.write_manifest(storage_client(settings), settings.gcs_bucket, folder,
                                     manifest)
    return manifest
