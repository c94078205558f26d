"""Columnar Avro binary encoding of pyarrow batches and an Avro object-container-file writer."""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from partyhelp_pipeline.spec import NUMERIC_PRECISION, NUMERIC_SCALE, TYPES, Column, TableSpec
from partyhelp_pipeline.spec.types import AvroKind as Kind
from partyhelp_pipeline.spec.types import AvroLogicalType as LogicalType

_fast_deflate: Any
try:  # ISA-L's deflate: the same RFC 1951 streams, ~4x faster than zlib at levels 1-3
    from isal import isal_zlib as _fast_deflate
except ImportError:  # isal comes with the [fast] extra; zlib writes the same streams
    _fast_deflate = None

__all__ = [
    "AvroContainerWriter",
    "AvroField",
    "EncodedBatch",
    "compress_block",
    "encode_records",
    "field_schema",
    "record_schema",
    "table_fields",
    "table_schema",
    "zigzag_varint",
]

Codec = Literal["deflate", "null"]

_MAGIC = b"Obj\x01"
_SYNC_SIZE = 16
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_U64_0, _U64_1, _U64_7, _U64_8, _U64_16, _U64_32, _U64_56, _U64_63 = (
    np.uint64(k) for k in (0, 1, 7, 8, 16, 32, 56, 63)
)
_U64_7F = np.uint64(0x7F)
_LOW56 = np.uint64(2**56 - 1)
_BYTES_7F = np.uint64(0x7F7F7F7F7F7F7F7F)
_BYTES_80 = np.uint64(0x8080808080808080)
# (bits that stay, bits that move, shift): 28-bit halves to 32-bit lanes, then 14-bit halves
# to 16-bit lanes, then 7-bit groups to bytes.
_SPREAD_7_TO_8 = (
    (np.uint64(0x000000000FFFFFFF), np.uint64(0x00FFFFFFF0000000), np.uint64(4)),
    (np.uint64(0x00003FFF00003FFF), np.uint64(0x0FFFC0000FFFC000), np.uint64(2)),
    (np.uint64(0x007F007F007F007F), np.uint64(0x3F803F803F803F80), np.uint64(1)),
)
# x (or ~x for negatives) needs k+1 two's-complement bytes once it reaches 2**(8k-1).
_DECIMAL_THRESHOLDS = np.array([1 << (8 * k - 1) for k in range(1, 8)], dtype=np.int64)
# Offsets of pa.binary are int32; past this many bytes everything switches to large_binary.
_BINARY_MAX = 2**31 - 1


@dataclass(frozen=True)
class AvroField:
    """One record field: its wire kind, nullability and (optional) Avro logical type."""

    name: str
    kind: Kind
    nullable: bool
    # Only for kind "long": "date" is written as Avro int (same varint, range-checked to int32).
    logical_type: LogicalType | None = None
    # Only for kind "decimal": used by field_schema and to reject values BigQuery would refuse.
    precision: int = NUMERIC_PRECISION
    scale: int = NUMERIC_SCALE
    doc: str | None = None  # written into the schema only

    def __post_init__(self) -> None:
        """Reject combinations the encoder or the schema builder cannot honour."""
        if self.kind not in ("long", "string", "decimal", "double"):
            raise ValueError(f"field {self.name!r}: unknown kind {self.kind!r}")
        if self.logical_type is not None:
            if self.kind != "long":
                raise ValueError(f"field {self.name!r}: logical_type needs kind 'long'")
            if self.logical_type not in ("date", "timestamp-micros"):
                raise ValueError(f"field {self.name!r}: unknown logical_type {self.logical_type!r}")
        if self.kind == "decimal" and not 0 <= self.scale <= self.precision:
            raise ValueError(f"field {self.name!r}: need 0 <= scale <= precision")


def field_schema(field: AvroField) -> dict[str, Any]:
    """Avro schema of one field, matching what encode_records writes for it."""
    avro_type: Any
    if field.kind == "string":
        avro_type = "string"
    elif field.kind == "decimal":
        avro_type = {
            "type": "bytes",
            "logicalType": "decimal",
            "precision": field.precision,
            "scale": field.scale,
        }
    elif field.kind == "double":
        avro_type = "double"
    elif field.logical_type == "date":
        avro_type = {"type": "int", "logicalType": "date"}
    elif field.logical_type == "timestamp-micros":
        avro_type = {"type": "long", "logicalType": "timestamp-micros"}
    else:
        avro_type = "long"
    schema: dict[str, Any] = {"name": field.name, "type": avro_type}
    if field.nullable:
        # "null" must be the first branch: the encoder writes index 0 for null, 1 for a value.
        schema = {"name": field.name, "type": ["null", avro_type], "default": None}
    return {**schema, "doc": field.doc} if field.doc is not None else schema


def record_schema(
    name: str,
    fields: Sequence[AvroField],
    namespace: str | None = None,
    doc: str | None = None,
) -> dict[str, Any]:
    """Avro record schema for the given fields, in order."""
    schema: dict[str, Any] = {"type": "record", "name": name}
    if namespace:
        schema["namespace"] = namespace
    if doc is not None:
        schema["doc"] = doc
    schema["fields"] = [field_schema(f) for f in fields]
    return schema


def table_fields(columns: Sequence[Column]) -> list[AvroField]:
    """How the encoder writes each spec column: the type table's Avro encoding."""
    return [
        AvroField(
            c.name,
            TYPES[c.type].avro_kind,
            c.nullable,
            TYPES[c.type].avro_logical_type,
            doc=c.description,
        )
        for c in columns
    ]


def table_schema(spec: TableSpec, include_pii: bool = False) -> dict[str, Any]:
    """The documented Avro record schema of a reporting table's exported files."""
    return record_schema(
        spec.name,
        table_fields(spec.output_columns(include_pii)),
        namespace="partyhelp.reporting",
        doc=spec.description,
    )


def zigzag_varint(value: int) -> bytes:
    """Avro long encoding of a single Python int (for headers and block framing)."""
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"{value} does not fit an Avro long")
    z = (value << 1) ^ (value >> 63)
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


@dataclass(frozen=True)
class EncodedBatch:
    """Concatenated Avro-encoded records of one batch plus where each record starts."""

    data: np.ndarray  # uint8, exactly row_offsets[-1] bytes
    row_offsets: np.ndarray  # int64, num_rows + 1 entries, starts at 0

    @property
    def num_rows(self) -> int:
        """Number of records in the batch."""
        return len(self.row_offsets) - 1

    @property
    def nbytes(self) -> int:
        """Total encoded size in bytes."""
        return int(self.row_offsets[-1])

    def view_rows(self, start: int, stop: int) -> memoryview:
        """Zero-copy view of records [start, stop) (for compress_block / write_block)."""
        start, stop, _ = slice(start, stop).indices(self.num_rows)
        stop = max(start, stop)
        rows: Any = self.data[self.row_offsets[start] : self.row_offsets[stop]]  # a buffer
        return memoryview(rows)

    def slice_rows(self, start: int, stop: int) -> bytes:
        """Bytes of records [start, stop), Python slice semantics."""
        return bytes(self.view_rows(start, stop))

    def record(self, i: int) -> bytes:
        """Bytes of record i."""
        if not -self.num_rows <= i < self.num_rows:
            raise IndexError(i)
        i %= self.num_rows
        return self.slice_rows(i, i + 1)

    def block_ranges(self, max_block_bytes: int) -> list[tuple[int, int]]:
        """Split rows into consecutive [start, stop) ranges of at most max_block_bytes each.

        A single record larger than the limit gets a range of its own.
        """
        if max_block_bytes <= 0:
            raise ValueError("max_block_bytes must be positive")
        ranges: list[tuple[int, int]] = []
        start = 0
        n = self.num_rows
        while start < n:
            limit = self.row_offsets[start] + max_block_bytes
            stop = int(np.searchsorted(self.row_offsets, limit, side="right")) - 1
            stop = min(max(stop, start + 1), n)
            ranges.append((start, stop))
            start = stop
        return ranges


class _Piece(NamedTuple):
    """Per-row bytes of one bounded-width segment: a byte matrix, which cells to keep, row sizes."""

    cells: np.ndarray  # (n, w) uint8
    keep: np.ndarray  # (n, w) bool
    lengths: np.ndarray  # (n,) int64, == keep.sum(axis=1)


def _union_piece(valid: np.ndarray) -> _Piece:
    """Union branch byte: zig-zag 0 (0x00) for null, zig-zag 1 (0x02) for a value."""
    n = len(valid)
    cells = (valid.astype(np.uint8) << 1).reshape(n, 1)
    return _Piece(cells, np.ones((n, 1), dtype=bool), np.ones(n, dtype=np.int64))


def _varint_piece(values: np.ndarray, valid: np.ndarray | None) -> _Piece:
    """Zig-zag varints of int64 values; rows not valid contribute nothing."""
    n = len(values)
    z = ((values << 1) ^ (values >> 63)).view(np.uint64)
    if valid is not None:
        z = np.where(valid, z, _U64_0)  # keeps the matrix narrow; nulls are masked out anyway
    width = max(1, -(-int(z.max(initial=0)).bit_length() // 7))
    # SWAR: spread the low 56 bits into 8 little-endian bytes of 7 bits each, so one uint64
    # per row is already the first 8 varint bytes (a handful of whole-array ops, no loops).
    x = z & _LOW56
    for stay, move, shift in _SPREAD_7_TO_8:
        x = (x & stay) | ((x & move) << shift)
    # Byte k needs the continuation bit iff some later byte is non-zero. Adding 0x7f to each
    # byte (all <= 0x7f, so no carries) sets its top bit iff it is non-zero.
    cont = ((x + _BYTES_7F) & _BYTES_80) >> _U64_8
    if width > 8:
        cont |= (z > _LOW56).astype(np.uint64) << _U64_63
    cont |= cont >> _U64_8
    cont |= cont >> _U64_16
    cont |= cont >> _U64_32
    x |= cont
    # Byte 0 is always written; byte k>0 iff byte k-1 continues. One 0/1 byte per position.
    keep = (cont << _U64_1) | _U64_1
    if valid is not None:
        keep *= valid
    lengths = np.bitwise_count(keep).astype(np.int64)
    if width <= 8:
        cells = x.view(np.uint8).reshape(n, 8)[:, :width]
        return _Piece(cells, keep.view(np.bool_).reshape(n, 8)[:, :width], lengths)
    # Values of 2**56 and more need bytes 8 and 9, built from the top 8 bits the same way.
    hi = z >> _U64_56
    hi_cells = (hi & _U64_7F) | ((hi >> _U64_7) << _U64_7) | ((hi >> _U64_7) << _U64_8)
    hi_keep = (hi != 0).astype(np.uint64) | ((hi >> _U64_7) << _U64_8)
    lengths += np.bitwise_count(hi_keep)
    cells = np.column_stack([x, hi_cells]).view(np.uint8)[:, :10]
    keep_bits = np.column_stack([keep, hi_keep]).view(np.bool_)[:, :10]
    return _Piece(cells, keep_bits, lengths)


def _decimal_piece(values: np.ndarray, valid: np.ndarray | None) -> _Piece:
    """Avro bytes of minimal big-endian two's complement (Java BigInteger.toByteArray)."""
    n = len(values)
    magnitude = values ^ (values >> 63)  # ~x for negatives: same byte count as x
    size = np.searchsorted(_DECIMAL_THRESHOLDS, magnitude, side="right") + 1
    if valid is not None:
        size *= valid  # size 0 marks a null: nothing written
    width = max(int(size.max(initial=0)), 1)
    cells = np.empty((n, width + 1), dtype=np.uint8)
    # Length prefix: zig-zag(size) = 2*size, at most 16, so always a single varint byte.
    cells[:, 0] = size << 1
    cells[:, 1:] = values.astype(">i8").view(np.uint8).reshape(n, 8)[:, 8 - width :]
    # Row s of the table keeps the prefix and the last s big-endian bytes (none for s=0).
    table = np.zeros((9, width + 1), dtype=bool)
    table[1:, 0] = True
    table[1:, 1:] = np.arange(width, 0, -1)[None, :] <= np.arange(1, 9)[:, None]
    keep = table[size]
    lengths = size + (size > 0)
    return _Piece(cells, keep, lengths)


def _double_piece(arr: pa.Array, valid: np.ndarray | None) -> _Piece:
    """Avro double: 8 little-endian IEEE 754 bytes; rows not valid contribute nothing."""
    n = len(arr)
    buf = arr.buffers()[1]
    values = (
        np.zeros(n, dtype="<f8")
        if buf is None
        else np.frombuffer(buf, dtype="<f8", count=arr.offset + n)[arr.offset :]
    )
    cells = values.view(np.uint8).reshape(n, 8)
    keep = np.ones((n, 8), dtype=bool) if valid is None else np.repeat(valid[:, None], 8, axis=1)
    lengths = np.full(n, 8, dtype=np.int64) if valid is None else valid.astype(np.int64) * 8
    return _Piece(cells, keep, lengths)


def _validity(arr: pa.Array) -> np.ndarray | None:
    """Boolean validity per row, or None when the array has no nulls."""
    if arr.null_count == 0:
        return None
    first, last = arr.offset // 8, (arr.offset + len(arr) + 7) // 8
    bitmap = np.frombuffer(arr.buffers()[0], dtype=np.uint8)[first:last]
    skip = arr.offset - 8 * first
    return np.unpackbits(bitmap, bitorder="little")[skip : skip + len(arr)].view(bool)


def _int64_values(arr: pa.Array) -> np.ndarray:
    """Zero-copy int64 view of the value buffer (slots under nulls are arbitrary)."""
    buf = arr.buffers()[1]
    if buf is None:  # e.g. an all-null array built without a value buffer
        return np.zeros(len(arr), dtype=np.int64)
    return np.frombuffer(buf, dtype=np.int64, count=arr.offset + len(arr))[arr.offset :]


def _string_lengths(arr: pa.Array) -> np.ndarray:
    """UTF-8 byte length per row from the Arrow offsets buffer."""
    dtype = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(arr.buffers()[1], dtype=dtype, count=arr.offset + len(arr) + 1)
    return np.diff(offsets[arr.offset :]).astype(np.int64, copy=False)


def _null_error(field: AvroField, valid: np.ndarray) -> ValueError:
    """Error naming the field and the first null row of a non-nullable field."""
    row = int(np.argmin(valid))
    return ValueError(
        f"field {field.name!r} is not nullable but row {row} of the batch is null "
        f"({int(np.count_nonzero(~valid))} null rows)"
    )


def _check_range(
    field: AvroField, values: np.ndarray, valid: np.ndarray | None, low: int, high: int, what: str
) -> None:
    """Raise ValueError naming field and row if a non-null value lies outside [low, high]."""
    bad = (values < low) | (values > high)
    if valid is not None:
        bad &= valid
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(
            f"field {field.name!r}: value {int(values[row])} at row {row} of the batch {what}"
        )


def _prepare_column(field: AvroField, column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Combine chunks and check/convert the Arrow type the field kind expects."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if field.kind == "string":
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            raise TypeError(f"field {field.name!r}: expected string array, got {column.type}")
        return column
    if field.kind == "double":
        if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
            raise TypeError(f"field {field.name!r}: expected float64 array, got {column.type}")
        return column if column.type == pa.float64() else column.cast(pa.float64())
    if not pa.types.is_integer(column.type):
        raise TypeError(f"field {field.name!r}: expected int64 array, got {column.type}")
    if column.type != pa.int64():
        # Safe cast: raises on uint64 values beyond int64 instead of wrapping.
        column = column.cast(pa.int64())
    return column


def _binary_from_piece_run(pieces: list[_Piece], n: int, large: bool) -> pa.Array:
    """Interleave bounded-width pieces into one binary array of per-row bytes."""
    cells = np.concatenate([p.cells for p in pieces], axis=1)
    keep = np.concatenate([p.keep for p in pieces], axis=1)
    # Boolean indexing walks the 2-D matrix in row-major order, so this is row-interleaved.
    data = cells[keep]
    offsets = np.zeros(n + 1, dtype=np.int64 if large else np.int32)
    np.cumsum(sum(p.lengths for p in pieces), out=offsets[1:])
    arrow_type = pa.large_binary() if large else pa.binary()
    return pa.Array.from_buffers(arrow_type, n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def encode_records(
    fields: Sequence[AvroField], columns: Sequence[pa.Array | pa.ChunkedArray]
) -> EncodedBatch:
    """Avro-encode a batch of records, column by column, with vectorised numpy/Arrow kernels."""
    if len(fields) != len(columns):
        raise ValueError(f"{len(fields)} fields but {len(columns)} columns")
    if not fields:
        raise ValueError("a record needs at least one field")
    arrays = [_prepare_column(f, c) for f, c in zip(fields, columns, strict=True)]
    n = len(arrays[0])
    for f, a in zip(fields, arrays, strict=True):
        if len(a) != n:
            raise ValueError(f"field {f.name!r} has {len(a)} rows, expected {n}")
    if n == 0:
        return EncodedBatch(np.zeros(0, dtype=np.uint8), np.zeros(1, dtype=np.int64))
    segments, string_bytes = _segments(fields, arrays, n)
    # Upper bound of the joined size decides between int32 and int64 offsets.
    total = string_bytes + sum(
        int(p.lengths.sum()) for s in segments if isinstance(s, list) for p in s
    )
    large = total > _BINARY_MAX or any(pa.types.is_large_string(a.type) for a in arrays)
    return _join_segments(segments, n, large)


def _segments(
    fields: Sequence[AvroField], arrays: list[pa.Array], n: int
) -> tuple[list[list[_Piece] | pa.Array], int]:
    """The batch as segments, and an upper bound of its string bytes (null slots may span
    bytes). Bounded-width pieces (varints, decimals, union bytes, string length prefixes)
    between two strings are merged into one "run"; unbounded string bodies stay Arrow
    arrays, to be joined by Arrow's C++ kernel."""
    segments: list[list[_Piece] | pa.Array] = []
    run: list[_Piece] = []
    string_bytes = 0
    for field, arr in zip(fields, arrays, strict=True):
        valid = _validity(arr)
        if valid is not None and not field.nullable:
            raise _null_error(field, valid)
        if field.nullable:
            run.append(_union_piece(valid if valid is not None else np.ones(n, dtype=bool)))
        if field.kind == "string":
            lengths = _string_lengths(arr)
            string_bytes += int(lengths.sum())
            run.append(_varint_piece(lengths, valid))
            segments += [run, arr]
            run = []
        elif field.kind == "double":
            run.append(_double_piece(arr, valid))
        else:
            run.append(_number_piece(field, _int64_values(arr), valid))
    if run:
        segments.append(run)
    return segments, string_bytes


def _number_piece(field: AvroField, values: np.ndarray, valid: np.ndarray | None) -> _Piece:
    if field.kind == "decimal":
        if field.precision < 19:  # int64 cannot exceed 19 digits anyway
            limit = 10**field.precision - 1
            _check_range(field, values, valid, -limit, limit, "exceeds the decimal precision")
        return _decimal_piece(values, valid)
    if field.logical_type == "date":
        _check_range(field, values, valid, _INT32_MIN, _INT32_MAX, "does not fit Avro int")
    return _varint_piece(values, valid)


def _join_segments(segments: list[list[_Piece] | pa.Array], n: int, large: bool) -> EncodedBatch:
    """Concatenate the segments row by row into one buffer of encoded records."""
    binary_type = pa.large_binary() if large else pa.binary()
    joined_inputs: list[pa.Array] = []
    for s in segments:
        if isinstance(s, list):
            joined_inputs.append(_binary_from_piece_run(s, n, large))
        else:
            # Zero-copy reinterpretation when the offset width matches, otherwise an offset widen.
            joined_inputs.append(s.view(pa.binary()) if s.type == pa.string() else s)
            if joined_inputs[-1].type != binary_type:
                joined_inputs[-1] = joined_inputs[-1].cast(binary_type)
    if len(joined_inputs) == 1:
        result = joined_inputs[0]
    else:
        # Nulls only occur in string columns; their union byte already says "null", so they
        # must contribute no bytes: replace them by the empty string.
        result = pc.binary_join_element_wise(
            *joined_inputs,
            pa.scalar(b"", binary_type),
            null_handling="replace",
            null_replacement="",
        )
    offset_dtype = np.int64 if large else np.int32
    offsets = np.frombuffer(result.buffers()[1], dtype=offset_dtype, count=result.offset + n + 1)[
        result.offset :
    ]
    row_offsets = offsets.astype(np.int64) - offsets[0]
    start, stop = int(offsets[0]), int(offsets[-1])
    data = np.frombuffer(result.buffers()[2], dtype=np.uint8, count=stop)[start:]
    return EncodedBatch(data, row_offsets)


def compress_block(raw: bytes | memoryview | np.ndarray, level: int = 1) -> bytes:
    """Raw deflate (RFC 1951, no zlib header) as the Avro 'deflate' codec requires.

    Levels 1-3 use ISA-L (``isal``) when it is installed: any inflater reads its output,
    and at level 1 it compresses as well as zlib's level 1 in about a quarter of the time.
    Other levels, or no ``isal``, use zlib. Both release the GIL while they work.
    """
    module: Any = _fast_deflate if _fast_deflate is not None and 1 <= level <= 3 else zlib
    compressor = module.compressobj(level, module.DEFLATED, -15)
    compressed: bytes = compressor.compress(raw) + compressor.flush()
    return compressed


class AvroContainerWriter:
    """Writes an Avro object container file to a binary file object, block by block."""

    def __init__(
        self,
        fileobj: BinaryIO,
        schema: dict[str, Any],
        codec: Codec = "deflate",
        compression_level: int = 1,
        sync_marker: bytes | None = None,
    ) -> None:
        """Write the file header (magic, metadata with schema and codec, sync marker)."""
        if codec not in ("deflate", "null"):
            raise ValueError(f"unsupported codec {codec!r}")
        if not -1 <= compression_level <= 9:
            raise ValueError("compression_level must be in -1..9")
        if sync_marker is None:
            sync_marker = os.urandom(_SYNC_SIZE)
        if len(sync_marker) != _SYNC_SIZE:
            raise ValueError("sync_marker must be 16 bytes")
        self._fileobj = fileobj
        self.codec: Codec = codec
        self.compression_level = compression_level
        self.sync_marker = bytes(sync_marker)
        self.bytes_written = 0
        self.records_written = 0
        self.blocks_written = 0

        metadata = {
            "avro.schema": json.dumps(schema, separators=(",", ":")).encode(),
            "avro.codec": codec.encode(),
        }
        header = bytearray(_MAGIC)
        header += zigzag_varint(len(metadata))
        for key, value in metadata.items():
            key_bytes = key.encode()
            header += zigzag_varint(len(key_bytes)) + key_bytes
            header += zigzag_varint(len(value)) + value
        header += zigzag_varint(0)  # end of the metadata map
        header += self.sync_marker
        self._write(header)

    def _write(self, chunk: bytes | bytearray | memoryview) -> None:
        """Write and count bytes."""
        self._fileobj.write(chunk)
        self.bytes_written += len(chunk)

    def compress(self, raw: bytes | memoryview) -> bytes | memoryview:
        """Apply this writer's codec; safe to call from another thread (zlib drops the GIL)."""
        if self.codec == "null":
            return raw
        return compress_block(raw, self.compression_level)

    def write_block(self, num_records: int, raw: bytes | memoryview) -> int:
        """Compress and write one block of num_records encoded records; returns bytes written."""
        if num_records == 0:
            return self.write_compressed_block(0, b"")
        return self.write_compressed_block(num_records, self.compress(raw))

    def write_compressed_block(self, num_records: int, compressed: bytes | memoryview) -> int:
        """Write one already codec-encoded block; returns bytes written.

        Blocks of zero records are skipped: Java's DataFileStream stops reading at one.
        """
        if num_records < 0:
            raise ValueError("num_records must be >= 0")
        if num_records == 0:
            return 0
        if isinstance(compressed, memoryview):
            compressed = compressed.cast("B")
        before = self.bytes_written
        self._write(zigzag_varint(num_records) + zigzag_varint(len(compressed)))
        self._write(compressed)
        self._write(self.sync_marker)
        self.records_written += num_records
        self.blocks_written += 1
        return self.bytes_written - before
