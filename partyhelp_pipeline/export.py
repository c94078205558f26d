"""MySQL -> Arrow -> Avro parts in GCS -> manifest: the export of one reporting table.

An export is planned once (its id and its deterministic primary-key chunks), each
chunk is streamed in its own consistent snapshot into Avro parts that stream into GCS
while they are written (``parts.py``), and a manifest is committed last, only when
every chunk's rows and money sums equal the source's aggregates from the same snapshot.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import os
import queue
import secrets
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

from partyhelp_pipeline import avro_encoding as avro
from partyhelp_pipeline import manifest as mf
from partyhelp_pipeline.batches import BatchContext, QualityCounts, convert_columns, to_columns
from partyhelp_pipeline.clients import gcs_upload_retry, storage_client
from partyhelp_pipeline.clock import iso, utc_now
from partyhelp_pipeline.drift import check_schema, describe_source
from partyhelp_pipeline.errors import (
    ExportIntegrityError,
    ReconciliationError,
    export_source_error,
)
from partyhelp_pipeline.logs import Logger, get_logger
from partyhelp_pipeline.parts import PartStore, PartUploader
from partyhelp_pipeline.settings import Settings
from partyhelp_pipeline.source import IdRange, fetch_one, plan_chunks, snapshot, stream_rows
from partyhelp_pipeline.spec import TableSpec
from partyhelp_pipeline.spec.sql import flattening_query, totals_query

# A batch holds about this many bytes of encoded Avro: its rows as Python objects take ~6x
# that, its encoding ~5x, so memory stays flat whatever the row width or the table size
# (larger batches save little CPU: the per-batch work is a few hundred numpy/Arrow calls).
BATCH_TARGET_BYTES = 512 * 1024
FIRST_BATCH_ROWS = 1_000  # until the row width is known

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


@dataclass
class ChunkTally:
    """What a chunk's stream has written so far: rows, money sums in cents, quality."""

    rows: int = 0
    money_cents: dict[str, int] = field(default_factory=dict)
    quality: QualityCounts = field(default_factory=QualityCounts)


def plan_export(
    settings: Settings,
    spec: TableSpec,
    sync_date: dt.date,
    flow_run_id: str | None,
    replaces: str | None = None,
) -> ExportPlan:
    """Fix the export id and the primary-key chunks of one table (``replaces``: the id of a
    damaged export that this one redoes, recorded in its manifest)."""
    with snapshot(settings.mysql) as connection:
        chunks = plan_chunks(connection, spec.source_table, settings.chunk_rows, spec.key_column)
    planned = utc_now()
    run = (flow_run_id or "local").split("-")[0][:8]
    export_id = f"{planned:%Y%m%dT%H%M%S}Z-{run}-{secrets.token_hex(2)}"
    return ExportPlan(
        spec.name, sync_date.isoformat(), export_id, flow_run_id, iso(planned), chunks, replaces
    )


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


class _CyclicGcPause:
    """Pauses Python's cyclic garbage collector, process-wide, while any holder is inside;
    it resumes when the last one leaves (if it was running when the first came in).

    A batch of rows arrives as thousands of new tuples at once: each batch pushes the
    collector past its threshold (700 new objects) several times, and every collection
    walks the batch's live tuples, ~0.75 µs of CPU per row on the reading thread (15 % of
    the export's client CPU, measured with ``gc.callbacks``). Those tuples hold only ints,
    strings and floats and die with the batch: they can never be part of a cycle, so the
    collector has nothing to find in them. Counted, because chunks read in parallel threads;
    and since their pauses can overlap without a gap for minutes, a holder leaving a pause
    older than ``max_seconds`` collects the young generations, so that other threads' cyclic
    garbage waits at most that long.
    """

    def __init__(self, max_seconds: float = 1.0) -> None:
        self.max_seconds = max_seconds
        self._lock = threading.Lock()
        self._holders = 0
        self._resume = False
        self._since = 0.0

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if not self._holders:
                self._resume = gc.isenabled()
                self._since = time.monotonic()
                gc.disable()
            self._holders += 1
        try:
            yield
        finally:
            if self._leave():
                gc.collect(1)

    def _leave(self) -> bool:
        """One holder leaves; True when the pause, still held by others, is overdue."""
        with self._lock:
            self._holders -= 1
            if not self._holders:
                if self._resume:
                    gc.enable()
                return False
            if self._resume and time.monotonic() - self._since > self.max_seconds:
                self._since = time.monotonic()
                return True
            return False


_gc_paused = _CyclicGcPause()


def _arrow_batches(
    context: BatchContext, batches: Iterable[tuple[Sequence[str], Sequence[tuple[Any, ...]]]]
) -> Iterator[dict[str, pa.Array]]:
    """Each batch of source rows as Arrow columns; the rows (Python objects) are made and
    freed inside collector pauses (see ``_CyclicGcPause``): the reader frees a batch when it
    fetches the next, inside the next pause."""
    rows_batches = iter(batches)
    while True:
        with _gc_paused():
            batch = next(rows_batches, None)
            if batch is None:
                return
            columns = to_columns(context, *batch)
            del batch  # ours; the reader keeps the rows until its next fetch
        yield columns


class _Progress:
    """Follows a chunk's stream: every ``PARTYHELP_PROGRESS_SECONDS`` it logs the rows so
    far, of the source's count (known before streaming), the rate and an ETA; inside a
    Prefect task run a progress artifact follows the export too. Outside Prefect (a plain
    call, the benchmark) nothing of Prefect is imported."""

    def __init__(self, log: Logger, table: str, index: int, every: float) -> None:
        self._log, self._table, self._index, self._every = log, table, index, every
        self._started = time.monotonic()
        self._last = self._started
        self._total = 0
        self._artifact: Any = None

    def start(self, total: int) -> None:
        """The source's row count of the chunk; opens the progress artifact."""
        self._total, self._started = total, time.monotonic()
        self._last = self._started
        self._artifact = _create_progress_artifact(
            self._log,
            f"export-{self._table}-chunk-{self._index}".replace("_", "-"),
            f"export of {self._table}, chunk {self._index}: {total:,} rows in the source",
        )

    def update(self, rows: int) -> None:
        """Log (and move the artifact) if the interval has passed."""
        now = time.monotonic()
        if now - self._last < self._every:
            return
        self._last = now
        rate = rows / max(now - self._started, 1e-9)
        left = max(self._total - rows, 0)
        eta = f"ETA {left / rate:.0f} s" if rate > 0 else "ETA unknown"
        self._log.info(
            "export-%s chunk %d: %d of %d rows (%.1f %%), %.0f rows/s, %s",
            self._table,
            self._index,
            rows,
            self._total,
            self._percent(rows),
            rate,
            eta,
        )
        self._move_artifact(self._percent(rows))

    def finish(self) -> None:
        """The stream ended: the artifact shows 100 %."""
        self._move_artifact(100.0)

    def _percent(self, rows: int) -> float:
        return min(100.0, 100.0 * rows / self._total) if self._total else 100.0

    def _move_artifact(self, percent: float) -> None:
        if self._artifact is None:
            return
        try:
            from prefect.artifacts import update_progress_artifact

            update_progress_artifact(self._artifact, percent)
        except Exception as exc:  # progress is a view: it never fails the export
            self._log.warning(
                "export-%s chunk %d: progress artifact not updated: %s",
                self._table,
                self._index,
                exc,
            )
            self._artifact = None


def _create_progress_artifact(log: Logger, key: str, description: str) -> Any:
    """A Prefect progress artifact at 0 %, when running inside a Prefect task run; else
    (or when the API refuses it) None."""
    if "prefect.context" not in sys.modules:  # not imported: surely not in a task run
        return None
    from prefect.context import TaskRunContext

    if TaskRunContext.get() is None:
        return None
    try:
        from prefect.artifacts import create_progress_artifact

        return create_progress_artifact(0.0, key=key, description=description)
    except Exception as exc:  # progress is a view: it never fails the export
        log.warning("%s: progress artifact not created: %s", key, exc)
        return None


def batch_context(settings: Settings, spec: TableSpec, sync_date: dt.date) -> BatchContext:
    """What every batch of one table's export shares: columns, day and PII salt."""
    salt = settings.pii_salt.get_secret_value().encode() if settings.pii_salt else None
    return BatchContext(spec, spec.output_columns(settings.include_pii_hashes), sync_date, salt)


def _stream_chunk(
    connection: Any,
    settings: Settings,
    context: BatchContext,
    params: dict[str, Any],
    uploader: PartUploader,
    progress: _Progress,
) -> ChunkTally:
    """Stream the chunk's rows through Arrow and Avro into the uploader."""
    fields = avro.table_fields(context.columns)
    tally = ChunkTally(money_cents={c.name: 0 for c in context.spec.money_columns})
    sizer = BatchSizer(settings.batch_rows)
    batches = stream_rows(
        connection, settings.mysql.driver, flattening_query(context.spec), params, sizer
    )
    # The reader thread also turns each batch into Arrow columns at once, so only the batch
    # being read exists as Python objects: memory stays flat and small.
    for source_columns in _prefetch(_arrow_batches(context, batches)):
        converted = convert_columns(context, source_columns, tally.quality)
        encoded = avro.encode_records(fields, converted.arrays)
        sizer.observe(encoded.num_rows, encoded.nbytes)
        uploader.write_batch(encoded)
        tally.rows += converted.num_rows
        for name, cents in converted.money_cents.items():
            tally.money_cents[name] += cents
        progress.update(tally.rows)
    progress.finish()
    return tally


def export_chunk(
    settings: Settings,
    spec: TableSpec,
    plan: ExportPlan,
    index: int,
    logger: Logger | None = None,
    store: PartStore | None = None,
) -> ChunkResult:
    """Stream one chunk of ``spec`` into Avro parts in GCS (or ``store``), inside one
    consistent snapshot."""
    chunk = plan.chunk(index)
    sync_date = dt.date.fromisoformat(plan.sync_date)
    params = {
        "first_id": chunk.first_id,
        "last_id": chunk.last_id,
        "include_pii": int(settings.include_pii_hashes),
    }
    folder = mf.export_folder(settings.gcs_prefix, sync_date, spec.name, plan.export_id)
    uploader = PartUploader(
        settings, folder, index, avro.table_schema(spec, settings.include_pii_hashes), store
    )
    progress = _Progress(logger or get_logger(), spec.name, index, settings.progress_seconds)
    started = utc_now()
    try:
        with snapshot(settings.mysql) as connection:
            # The run checked the schema at its start; a migration deployed since must fail
            # here, before this chunk writes anything, instead of turning values into NULL.
            # (A change after this check fails the reads below with error 1412: retried.)
            check_schema(spec, describe_source(connection, settings.mysql.database))
            totals = fetch_one(connection, totals_query(spec), params)
            progress.start(int(totals.get("row_count") or 0))
            tally = _stream_chunk(
                connection,
                settings,
                batch_context(settings, spec, sync_date),
                params,
                uploader,
                progress,
            )
        parts = uploader.finish()
    except BaseException as exc:
        uploader.close()
        wrapped = export_source_error(exc, spec.name)
        if wrapped is exc:
            raise
        raise wrapped from None
    result = ChunkResult(
        index,
        chunk.first_id,
        chunk.last_id,
        tally.rows,
        parts,
        {k: int(v or 0) for k, v in totals.items()},
        tally.money_cents,
        tally.quality.to_dict(),
        iso(started),
        iso(utc_now()),
        settings.mysql.driver,
    )
    check_chunk(spec, result)
    return result


def check_chunk(spec: TableSpec, result: ChunkResult) -> None:
    """The chunk's rows and money sums must equal the source aggregates of its snapshot."""
    expected_rows = result.source_totals.get("row_count", 0)
    if result.rows != expected_rows:
        raise ReconciliationError(
            f"{spec.name}: chunk {result.index} (ids {result.first_id}..{result.last_id}) "
            f"exported {result.rows} rows but the source counted {expected_rows}",
            table=spec.name,
        )
    for name, cents in result.exported_totals.items():
        if cents != result.source_totals.get(name, 0):
            raise ReconciliationError(
                f"{spec.name}: chunk {result.index} sum of {name} is {cents / 100:.2f} in the "
                f"export but {result.source_totals.get(name, 0) / 100:.2f} in the source",
                table=spec.name,
                column=name,
            )


def commit_manifest(
    settings: Settings, spec: TableSpec, plan: ExportPlan, chunks: Sequence[ChunkResult]
) -> mf.Manifest:
    """Write the manifest of a complete export; from then on it is loadable and kept."""
    ordered = sorted(chunks, key=lambda c: c.index)
    if [c.index for c in ordered] != list(range(len(plan.chunks))):
        raise ExportIntegrityError(
            f"{spec.name}: export {plan.export_id} is missing chunks", table=spec.name
        )
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
        chunks=[
            {k: v for k, v in asdict(c).items() if k not in ("parts", "quality")} for c in ordered
        ],
        avro_schema=avro.table_schema(spec, settings.include_pii_hashes),
        bigquery_schema=spec.bigquery_schema(settings.include_pii_hashes),
        driver=ordered[0].driver if ordered else settings.mysql.driver,
        replaces=plan.replaces,
    )
    folder = mf.export_folder(
        settings.gcs_prefix, dt.date.fromisoformat(plan.sync_date), spec.name, plan.export_id
    )
    manifest.uri = mf.write_manifest(
        storage_client(settings), settings.gcs_bucket, folder, manifest, gcs_upload_retry(settings)
    )
    return manifest
