"""MySQL -> Arrow -> Avro parts in GCS -> manifest: the export of one reporting table.

An export is planned once (its id, its deterministic primary-key chunks and whether it
holds PII hashes), each chunk is streamed in its own consistent snapshot into Avro parts
that stream into GCS while they are written (``parts.py``), and a manifest is committed
last, only when every chunk's rows and money sums equal the source's aggregates from the
same snapshot. This module composes those stages; where the export reads and writes is an
``ExportTarget``, and the mechanisms it uses live beside it: batch sizing in ``batches``,
the read-ahead and the collector pause in ``pipelining``, progress in ``progress``.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

from partyhelp_pipeline import avro_encoding as avro
from partyhelp_pipeline import freshness
from partyhelp_pipeline import manifest as mf
from partyhelp_pipeline.batches import (
    BatchContext,
    BatchSizer,
    QualityCounts,
    convert_columns,
    to_columns,
)
from partyhelp_pipeline.clock import iso, utc_now
from partyhelp_pipeline.drift import check_schema, describe_source
from partyhelp_pipeline.errors import (
    ExportIntegrityError,
    ReconciliationError,
    export_source_error,
)
from partyhelp_pipeline.export_target import ExportTarget
from partyhelp_pipeline.freshness import NO_LIMITS, Limits
from partyhelp_pipeline.logs import Logger, get_logger
from partyhelp_pipeline.lookups import LookupTable, read_lookups
from partyhelp_pipeline.parts import GcsPartStore, PartStore, PartUploader, StreamingPartStore
from partyhelp_pipeline.pipelining import pause_cyclic_gc, prefetch
from partyhelp_pipeline.progress import ChunkProgress
from partyhelp_pipeline.source import IdRange, fetch_one, plan_chunks, snapshot, stream_rows
from partyhelp_pipeline.spec import TableSpec
from partyhelp_pipeline.spec.sql import (
    FRESHNESS_NEWEST,
    SNAPSHOT_AT,
    flattening_query,
    totals_query,
)

# Arrow's default allocator (mimalloc) keeps the pages of freed batches; the system one
# gives large blocks back at once: ~12 MB less at peak for the export, at the same speed.
# An explicit ARROW_DEFAULT_MEMORY_POOL still wins.
if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
    pa.set_memory_pool(pa.system_memory_pool())


@dataclass(frozen=True)
class ExportPlan:
    """One export attempt of one table: its id, its chunks and its PII choice (fixed once,
    so every chunk and the manifest agree, across retries too)."""

    table: str
    sync_date: dt.date
    export_id: str
    flow_run_id: str | None
    planned_at: str
    chunks: tuple[tuple[int, int], ...]
    include_pii_hashes: bool = False
    replaces: str | None = None  # a damaged export of this run that this one redoes
    freshness_limits: Limits = NO_LIMITS  # fixed once, like the PII choice

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
    # The freshness column's newest value and the source's clock, in the chunk's snapshot
    # (epoch seconds, as read; ``freshness.measure`` makes them one reading).
    freshness_newest: int | None = None
    snapshot_at: int | None = None


@dataclass
class ChunkTally:
    """What a chunk's stream has written so far: rows, money sums in cents, quality."""

    rows: int = 0
    money_cents: dict[str, int] = field(default_factory=dict)
    quality: QualityCounts = field(default_factory=QualityCounts)


def plan_export(
    target: ExportTarget,
    spec: TableSpec,
    sync_date: dt.date,
    flow_run_id: str | None,
    replaces: str | None = None,
) -> ExportPlan:
    """Fix the export id, the primary-key chunks and the PII choice of one table
    (``replaces``: the id of a damaged export that this one redoes, recorded in its
    manifest)."""
    with snapshot(target.source) as connection:
        chunks = plan_chunks(connection, spec.source_table, target.chunk_rows, spec.key_column)
    planned = utc_now()
    run = (flow_run_id or "local").split("-")[0][:8]
    export_id = f"{planned:%Y%m%dT%H%M%S}Z-{run}-{secrets.token_hex(2)}"
    return ExportPlan(
        spec.name,
        sync_date,
        export_id,
        flow_run_id,
        iso(planned),
        chunks,
        target.include_pii_hashes,
        replaces,
        Limits.for_table(spec, target.max_source_age_hours, target.warn_source_age_hours),
    )


def arrow_batches(
    context: BatchContext,
    batches: Iterable[tuple[Sequence[str], Sequence[tuple[Any, ...]]]],
    lookups: Sequence[LookupTable] = (),
) -> Iterator[dict[str, pa.Array]]:
    """Each batch of source rows as Arrow columns, the lookups' joined; the rows (Python
    objects) are made and freed inside collector pauses (see ``pipelining.CyclicGcPause``):
    the reader frees a batch when it fetches the next, inside the next pause."""
    rows_batches = iter(batches)
    while True:
        with pause_cyclic_gc():
            batch = next(rows_batches, None)
            if batch is None:
                return
            columns = to_columns(context, *batch)
            del batch  # ours; the reader keeps the rows until its next fetch
        for lookup in lookups:
            lookup.join(columns)
        yield columns


def batch_context(target: ExportTarget, spec: TableSpec, plan: ExportPlan) -> BatchContext:
    """What every batch of one table's export shares: columns, day and PII salt."""
    columns = spec.output_columns(plan.include_pii_hashes)
    return BatchContext(spec, columns, plan.sync_date, target.salt_bytes)


def _stream_chunk(
    connection: Any,
    target: ExportTarget,
    context: BatchContext,
    params: dict[str, Any],
    uploader: PartUploader,
    progress: ChunkProgress,
) -> ChunkTally:
    """Stream the chunk's rows through Arrow and Avro into the uploader."""
    fields = avro.table_fields(context.columns)
    tally = ChunkTally(money_cents={c.name: 0 for c in context.spec.money_columns})
    sizer = BatchSizer(target.batch_rows)
    driver = target.source.driver
    lookups = read_lookups(connection, driver, context, params)  # in the chunk's snapshot
    batches = stream_rows(connection, driver, flattening_query(context.spec), params, sizer)
    # The reader thread also turns each batch into Arrow columns at once, so only the batch
    # being read exists as Python objects: memory stays flat and small.
    arrow = arrow_batches(context, batches, lookups)
    for source_columns in prefetch(arrow, thread_name="mysql-reader"):
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


def _part_uploader(
    target: ExportTarget, spec: TableSpec, plan: ExportPlan, index: int, store: PartStore | None
) -> PartUploader:
    """The uploader of chunk ``index``'s parts: into the export's folder in GCS, or ``store``."""
    folder = mf.export_folder(target.prefix, plan.sync_date, spec.name, plan.export_id)
    uploads: PartStore | StreamingPartStore = (
        store
        if store is not None
        else GcsPartStore(target.storage.bucket(target.bucket), target.upload_retry)
    )
    return PartUploader(
        uploads,
        target.part_max_bytes,
        folder,
        index,
        avro.table_schema(spec, plan.include_pii_hashes),
    )


def export_chunk(
    target: ExportTarget,
    spec: TableSpec,
    plan: ExportPlan,
    index: int,
    logger: Logger | None = None,
    store: PartStore | None = None,
) -> ChunkResult:
    """Stream one chunk of ``spec`` into Avro parts in GCS (or ``store``), inside one
    consistent snapshot, and check it against that snapshot's totals."""
    chunk = plan.chunk(index)
    params = {
        "first_id": chunk.first_id,
        "last_id": chunk.last_id,
        "include_pii": int(plan.include_pii_hashes),
    }
    context = batch_context(target, spec, plan)
    uploader = _part_uploader(target, spec, plan, index, store)
    progress = ChunkProgress(logger or get_logger(), spec.name, index, target.progress_seconds)
    started = utc_now()
    try:
        with snapshot(target.source) as connection:
            # The run checked the schema at its start; a migration deployed since must fail
            # here, before this chunk writes anything, instead of turning values into NULL.
            # (A change after this check fails the reads below with error 1412: retried.)
            check_schema(spec, describe_source(connection, target.source.database))
            totals = fetch_one(connection, totals_query(spec), params)
            newest, clock = totals.pop(FRESHNESS_NEWEST, None), totals.pop(SNAPSHOT_AT, None)
            progress.start(int(totals.get("row_count") or 0))
            tally = _stream_chunk(connection, target, context, params, uploader, progress)
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
        target.source.driver,
        _epoch_or_none(newest),
        _epoch_or_none(clock),
    )
    check_chunk(spec, result)
    return result


def _epoch_or_none(value: Any) -> int | None:
    return None if value is None else int(float(value))


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


def _summed(totals: Iterable[dict[str, int]]) -> dict[str, int]:
    summed: dict[str, int] = {}
    for chunk_totals in totals:
        for key, value in chunk_totals.items():
            summed[key] = summed.get(key, 0) + value
    return summed


def _manifest(spec: TableSpec, plan: ExportPlan, ordered: Sequence[ChunkResult]) -> mf.Manifest:
    """The manifest of the complete export made of the ``ordered`` chunks."""
    quality = QualityCounts()
    for chunk in ordered:
        quality.merge(QualityCounts.from_dict(chunk.quality))
    parts = [part for chunk in ordered for part in chunk.parts]
    return mf.Manifest(
        table=spec.name,
        sync_date=plan.sync_date,
        export_id=plan.export_id,
        flow_run_id=plan.flow_run_id,
        extracted_at=min(c.started_at for c in ordered),
        completed_at=iso(utc_now()),
        parts=parts,
        rows=sum(c.rows for c in ordered),
        bytes=sum(p.bytes for p in parts),
        source_totals=_summed(c.source_totals for c in ordered),
        exported_totals=_summed(c.exported_totals for c in ordered),
        quality=quality.to_dict(),
        chunks=[
            {k: v for k, v in asdict(c).items() if k not in ("parts", "quality")} for c in ordered
        ],
        avro_schema=avro.table_schema(spec, plan.include_pii_hashes),
        bigquery_schema=spec.bigquery_schema(plan.include_pii_hashes),
        driver=ordered[0].driver,
        replaces=plan.replaces,
        freshness=_freshness(spec, plan, ordered),
    )


def _freshness(
    spec: TableSpec, plan: ExportPlan, ordered: Sequence[ChunkResult]
) -> dict[str, Any] | None:
    readings = [(c.freshness_newest, c.snapshot_at) for c in ordered]
    measured = freshness.measure(spec, readings, plan.freshness_limits)
    return measured.to_dict() if measured else None


def commit_manifest(
    target: ExportTarget, spec: TableSpec, plan: ExportPlan, chunks: Sequence[ChunkResult]
) -> mf.Manifest:
    """Write the manifest of a complete export; from then on it is loadable and kept."""
    ordered = sorted(chunks, key=lambda c: c.index)
    if not ordered or [c.index for c in ordered] != list(range(len(plan.chunks))):
        raise ExportIntegrityError(
            f"{spec.name}: export {plan.export_id} is missing chunks", table=spec.name
        )
    manifest = _manifest(spec, plan, ordered)
    folder = mf.export_folder(target.prefix, plan.sync_date, spec.name, plan.export_id)
    manifest.uri = mf.write_manifest(
        target.storage, target.bucket, folder, manifest, target.upload_retry
    )
    return manifest
