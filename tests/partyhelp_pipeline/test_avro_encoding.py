"""Tests of the columnar Avro encoder and container writer against fastavro as the reference."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import zlib
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import fastavro
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from partyhelp_pipeline.avro_encoding import (
    AvroContainerWriter,
    AvroField,
    EncodedBatch,
    compress_block,
    encode_records,
    field_schema,
    record_schema,
    zigzag_varint,
)

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
DECIMAL_MAX = 10**18 - 1
SCALE = 2

_EDGE_POWERS = (7, 14, 15, 21, 23, 28, 31, 32, 35, 39, 42, 47, 49, 55, 56, 62)
INT64_EDGES = sorted(
    {0, 1, -1, 63, -63, 64, -64, 65, -65, 127, -127, 128, -128, 129, -129, 255, 256}
    | {2**k + d for k in _EDGE_POWERS for d in (-1, 0, 1)}
    | {-(2**k) + d for k in _EDGE_POWERS for d in (-1, 0, 1)}
    | {INT64_MIN, INT64_MIN + 1, INT64_MAX, INT64_MAX - 1}
)
DECIMAL_EDGES = sorted(
    {v for v in INT64_EDGES if abs(v) <= DECIMAL_MAX}
    | {DECIMAL_MAX, -DECIMAL_MAX, 10**17, -(10**17)}
)
STRING_EDGES = ["", "\x00", "a\x00b", "line\nbreak\r\n", "😀", "naïve ☃ 日本語 🏳️‍🌈", "x" * 60_000]

int64s = st.one_of(st.sampled_from(INT64_EDGES), st.integers(INT64_MIN, INT64_MAX))
unscaled = st.one_of(st.sampled_from(DECIMAL_EDGES), st.integers(-DECIMAL_MAX, DECIMAL_MAX))
texts = st.one_of(st.sampled_from(STRING_EDGES), st.text(max_size=40))


def java_decimal_bytes(value: int) -> bytes:
    """Independent reference: Java BigInteger.toByteArray (minimal two's complement)."""
    bits = value.bit_length() if value >= 0 else (~value).bit_length()
    return value.to_bytes(bits // 8 + 1, "big", signed=True)


def to_avro_value(field: AvroField, value: Any, *, decimal_as: str = "decimal") -> Any:
    """Python value fastavro expects for a column value (None stays None)."""
    if value is None or field.kind != "decimal":
        return value
    if decimal_as == "bytes":
        return java_decimal_bytes(value)
    return Decimal(value).scaleb(-field.scale)


def rows_of(fields: list[AvroField], values: list[list[Any]], **kw: Any) -> list[dict[str, Any]]:
    """Row dicts from per-column Python values."""
    n = len(values[0]) if values else 0
    return [
        {f.name: to_avro_value(f, col[i], **kw) for f, col in zip(fields, values, strict=True)}
        for i in range(n)
    ]


def fastavro_record_bytes(fields: list[AvroField], row: dict[str, Any]) -> bytes:
    """fastavro's schemaless encoding of one record."""
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(record_schema("r", fields)), row)
    return out.getvalue()


def read_container(data: bytes) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """All records and the metadata of a container file, read by fastavro."""
    reader = fastavro.reader(io.BytesIO(data))
    return list(reader), dict(reader.metadata)


def make_array(field: AvroField, values: list[Any], pad: int, large: bool) -> pa.Array:
    """Arrow array of the values, sliced out of a padded one when pad > 0 (offset != 0)."""
    if field.kind == "string":
        arrow_type = pa.large_string() if large else pa.string()
        filler: Any = "pad\x00ding"
    else:
        arrow_type = pa.int64()
        filler = INT64_MIN if field.kind == "long" else DECIMAL_MAX
    padded = pa.array([filler] * pad + values + [None, filler] * pad, arrow_type)
    return padded.slice(pad, len(values)) if pad else padded


@st.composite
def batches(draw: st.DrawFn, max_rows: int = 25) -> tuple[list[AvroField], list[pa.Array], list]:
    """Random fields, matching Arrow columns (maybe sliced / large_string) and their values."""
    n = draw(st.integers(0, max_rows))
    num_fields = draw(st.integers(1, 6))
    fields, columns, values = [], [], []
    for i in range(num_fields):
        kind = draw(st.sampled_from(["long", "string", "decimal"]))
        nullable = draw(st.booleans())
        field = AvroField(f"f{i}", kind, nullable)
        base = {"long": int64s, "string": texts, "decimal": unscaled}[kind]
        if nullable:
            null_share = draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))
            base = st.one_of(st.none(), base) if 0 < null_share < 1 else base
            if null_share == 1.0:
                base = st.none()
        col = draw(st.lists(base, min_size=n, max_size=n))
        pad = draw(st.sampled_from([0, 0, 1, 3, 9]))
        fields.append(field)
        values.append(col)
        columns.append(make_array(field, col, pad, draw(st.booleans())))
    return fields, columns, values


# Strings of 60 KB make a few examples slow; that is expected, not a flaky deadline.
SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(batches())
def test_bytes_equal_fastavro_schemaless_writer(batch: tuple) -> None:
    """Every record is byte-for-byte fastavro's encoding (decimal payload: Java's minimal bytes)."""
    fields, columns, values = batch
    encoded = encode_records(fields, columns)
    rows = rows_of(fields, values, decimal_as="bytes")
    expected = [fastavro_record_bytes(fields, row) for row in rows]
    assert encoded.num_rows == len(rows)
    assert encoded.row_offsets.dtype == np.int64
    assert encoded.row_offsets[0] == 0
    assert [encoded.record(i) for i in range(encoded.num_rows)] == expected
    assert bytes(encoded.data) == b"".join(expected)
    assert encoded.nbytes == sum(map(len, expected))


@SETTINGS
@given(batches(), st.sampled_from(["deflate", "null"]), st.data())
def test_container_round_trip_through_fastavro_reader(
    batch: tuple, codec: str, data: st.DataObject
) -> None:
    """Values read back by fastavro equal the input, whatever the codec and block split."""
    fields, columns, values = batch
    encoded = encode_records(fields, columns)
    cuts = sorted(data.draw(st.lists(st.integers(0, encoded.num_rows), max_size=4)))
    bounds = [0, *cuts, encoded.num_rows]
    out = io.BytesIO()
    schema = record_schema("exported_table", fields)
    writer = AvroContainerWriter(out, schema, codec=codec)
    for start, stop in itertools.pairwise(bounds):
        writer.write_block(stop - start, encoded.slice_rows(start, stop))
    records, metadata = read_container(out.getvalue())
    assert records == rows_of(fields, values)
    assert metadata["avro.codec"] == codec
    assert writer.records_written == encoded.num_rows
    assert writer.bytes_written == len(out.getvalue())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), unscaled), max_size=30))
def test_decimal_matches_fastavro_decimal_path_except_its_extra_sign_byte(
    values: list[int | None],
) -> None:
    """Against fastavro's own Decimal path: equal, or fastavro adds one redundant 0xff byte."""
    fields = [AvroField("amount", "decimal", True)]
    encoded = encode_records(fields, [pa.array(values, pa.int64())])
    for i, row in enumerate(rows_of(fields, [values])):
        ours, theirs = encoded.record(i), fastavro_record_bytes(fields, row)
        value = values[i]
        # fastavro sizes by |x|.bit_length(), one byte too many for x = -2**(8k-1).
        if (
            value is not None
            and value < 0
            and (-value).bit_count() == 1
            and value.bit_length() % 8 == 0
        ):
            payload = ours[2:]
            assert ours == b"\x02" + zigzag_varint(len(payload)) + payload
            assert theirs == b"\x02" + zigzag_varint(len(payload) + 1) + b"\xff" + payload
        else:
            assert ours == theirs


@pytest.mark.parametrize(
    ("unscaled_value", "payload"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x00\x80"),
        (-1, b"\xff"),
        (-128, b"\x80"),
        (-129, b"\xff\x7f"),
        (255, b"\x00\xff"),
        (-32768, b"\x80\x00"),
        (-32769, b"\xff\x7f\xff"),
        (DECIMAL_MAX, DECIMAL_MAX.to_bytes(8, "big", signed=True)),
        (-DECIMAL_MAX, (-DECIMAL_MAX).to_bytes(8, "big", signed=True)),
        (-(2**55), b"\x80" + b"\x00" * 6),
    ],
)
def test_decimal_known_encodings(unscaled_value: int, payload: bytes) -> None:
    """Decimal payloads are Java's BigInteger.toByteArray bytes, with a varint length."""
    fields = [AvroField("d", "decimal", False)]
    encoded = encode_records(fields, [pa.array([unscaled_value], pa.int64())])
    assert encoded.record(0) == zigzag_varint(len(payload)) + payload
    # And fastavro decodes them to the intended value.
    schema = fastavro.parse_schema(record_schema("r", fields))
    got = fastavro.schemaless_reader(io.BytesIO(encoded.record(0)), schema, schema)
    assert got == {"d": Decimal(unscaled_value).scaleb(-SCALE)}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, b"\x00"),
        (-1, b"\x01"),
        (1, b"\x02"),
        (63, b"\x7e"),
        (-64, b"\x7f"),
        (64, b"\x80\x01"),
        (-65, b"\x81\x01"),
        (8191, b"\xfe\x7f"),
        (8192, b"\x80\x80\x01"),
        (INT64_MAX, b"\xfe" + b"\xff" * 8 + b"\x01"),
        (INT64_MIN, b"\xff" * 9 + b"\x01"),
        (2**55, b"\x80" * 8 + b"\x01"),  # zig-zag 2**56: first 9-byte value
    ],
)
def test_long_known_encodings(value: int, expected: bytes) -> None:
    """Zig-zag varints from the Avro spec and at the 8/9/10-byte widths."""
    encoded = encode_records([AvroField("x", "long", False)], [pa.array([value], pa.int64())])
    assert encoded.record(0) == expected
    assert zigzag_varint(value) == expected


def test_nullable_union_bytes() -> None:
    """Null writes branch 0 (0x00) and nothing else; a value writes 0x02 then the value."""
    fields = [AvroField("s", "string", True), AvroField("x", "long", True)]
    columns = [pa.array([None, "ab"]), pa.array([5, None], pa.int64())]
    encoded = encode_records(fields, columns)
    assert encoded.record(0) == b"\x00" + b"\x02\x0a"
    assert encoded.record(1) == b"\x02\x04ab" + b"\x00"


@pytest.mark.parametrize("kind", ["long", "string", "decimal"])
def test_null_in_non_nullable_field_names_field_and_row(kind: str) -> None:
    """The error names the field and the batch row index (relative to a sliced array)."""
    value: Any = "v" if kind == "string" else 7
    fields = [AvroField("ok", "long", False), AvroField("customer_name", kind, False)]
    arrow_type = pa.string() if kind == "string" else pa.int64()
    sliced = pa.array([None, value, value, value, None, value], arrow_type).slice(1)
    with pytest.raises(ValueError, match=r"'customer_name'.*row 3\b"):
        encode_records(fields, [pa.array(range(5), pa.int64()), sliced])


def test_all_null_and_zero_row_batches() -> None:
    """All-null nullable columns and empty batches encode and read back."""
    fields = [
        AvroField("a", "long", True),
        AvroField("b", "string", True),
        AvroField("c", "decimal", True),
    ]
    columns = [pa.nulls(3, pa.int64()), pa.nulls(3, pa.string()), pa.nulls(3, pa.int64())]
    encoded = encode_records(fields, columns)
    assert bytes(encoded.data) == b"\x00\x00\x00" * 3
    assert encoded.row_offsets.tolist() == [0, 3, 6, 9]

    empty = encode_records(fields, [c.slice(0, 0) for c in columns])
    assert empty.num_rows == 0
    assert empty.row_offsets.tolist() == [0]
    assert empty.slice_rows(0, 0) == b""
    out = io.BytesIO()
    writer = AvroContainerWriter(out, record_schema("t", fields))
    assert writer.write_block(0, empty.slice_rows(0, 0)) == 0
    records, _ = read_container(out.getvalue())
    assert records == []
    assert writer.blocks_written == 0


def test_slice_rows_view_rows_and_block_ranges() -> None:
    """Row slices concatenate back to the batch; block ranges respect the byte limit."""
    n = 500
    rng = np.random.default_rng(1)
    fields = [AvroField("id", "long", False), AvroField("s", "string", True)]
    strings = ["x" * int(k) if k % 7 else None for k in rng.integers(0, 200, n)]
    encoded = encode_records(fields, [pa.array(np.arange(n)), pa.array(strings)])
    records = [encoded.record(i) for i in range(n)]
    assert encoded.slice_rows(10, 20) == b"".join(records[10:20])
    assert bytes(encoded.view_rows(490, 10_000)) == b"".join(records[490:])
    assert encoded.slice_rows(-3, n) == b"".join(records[-3:])
    assert encoded.record(-1) == records[-1]
    with pytest.raises(IndexError):
        encoded.record(n)

    ranges = encoded.block_ranges(4096)
    assert ranges[0][0] == 0
    assert ranges[-1][1] == n
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    sizes = [len(encoded.slice_rows(a, b)) for a, b in ranges]
    assert all(s <= 4096 for s in sizes)
    # Greedy: adding the next record to a block would have crossed the limit.
    assert all(s + len(records[b]) > 4096 for s, (_, b) in zip(sizes, ranges[:-1], strict=False))
    # A record bigger than the limit still gets its own block.
    assert encoded.block_ranges(1) == [(i, i + 1) for i in range(n)]


def test_container_header_blocks_and_sync_marker() -> None:
    """Header per the Avro 1.11 spec; blocks framed by count, size, data and the sync marker."""
    fields = [AvroField("id", "long", False), AvroField("name", "string", True)]
    schema = record_schema("users", fields, namespace="mysql.shop")
    encoded = encode_records(fields, [pa.array([1, 2, 3]), pa.array(["a", None, "ccc"])])
    sync = bytes(range(16))
    out = io.BytesIO()
    writer = AvroContainerWriter(out, schema, codec="null", sync_marker=sync)
    header_size = writer.bytes_written
    written = writer.write_block(2, encoded.slice_rows(0, 2))
    writer.write_compressed_block(1, encoded.slice_rows(2, 3))
    data = out.getvalue()

    assert data.startswith(b"Obj\x01")
    assert data[header_size - 16 : header_size] == sync
    block = data[header_size : header_size + written]
    raw = encoded.slice_rows(0, 2)
    assert block == zigzag_varint(2) + zigzag_varint(len(raw)) + raw + sync
    assert data.endswith(sync)
    assert writer.records_written == 3
    assert writer.blocks_written == 2

    reader = fastavro.reader(io.BytesIO(data))
    assert reader.metadata["avro.schema"] == (
        '{"type":"record","name":"users","namespace":"mysql.shop","fields":['
        '{"name":"id","type":"long"},'
        '{"name":"name","type":["null","string"],"default":null}]}'
    )
    assert list(reader) == [
        {"id": 1, "name": "a"},
        {"id": 2, "name": None},
        {"id": 3, "name": "ccc"},
    ]


def test_deflate_is_raw_rfc1951_and_blocks_can_be_compressed_in_threads() -> None:
    """compress_block output inflates with wbits=-15; threaded compression gives a valid file."""
    fields = [AvroField("id", "long", False), AvroField("note", "string", False)]
    n = 3000
    notes = [f"note {i} " * (i % 5) for i in range(n)]
    encoded = encode_records(fields, [pa.array(np.arange(n) * 1_000_003), pa.array(notes)])
    raw = encoded.slice_rows(0, n)
    compressed = compress_block(raw, 6)
    assert zlib.decompress(compressed, -15) == raw
    assert len(compressed) < len(raw)

    ranges = encoded.block_ranges(8192)
    out = io.BytesIO()
    writer = AvroContainerWriter(out, record_schema("t", fields), compression_level=3)
    with ThreadPoolExecutor(2) as pool:
        blocks = pool.map(lambda r: compress_block(encoded.view_rows(*r), 3), ranges)
        for (start, stop), block in zip(ranges, blocks, strict=True):
            writer.write_compressed_block(stop - start, block)
    records, metadata = read_container(out.getvalue())
    assert metadata["avro.codec"] == "deflate"
    assert records == [{"id": i * 1_000_003, "note": notes[i]} for i in range(n)]
    assert writer.blocks_written == len(ranges) > 1


def test_logical_types_read_back_as_dates_and_timestamps() -> None:
    """date (Avro int) and timestamp-micros fields decode to the intended values."""
    fields = [
        AvroField("day", "long", True, logical_type="date"),
        AvroField("at", "long", False, logical_type="timestamp-micros"),
        AvroField("price", "decimal", True, precision=10, scale=4),
    ]
    assert field_schema(fields[0])["type"] == ["null", {"type": "int", "logicalType": "date"}]
    days = [0, -719162, 2932896, None]  # 1970-01-01, 0001-01-01, 9999-12-31
    micros = [0, -62135596800000000, 253402300799999999, 1_700_000_000_123_456]
    prices = [12_345, None, -99_999_999, 0]
    columns = [pa.array(days, pa.int64()), pa.array(micros), pa.array(prices, pa.int64())]
    out = io.BytesIO()
    writer = AvroContainerWriter(out, record_schema("t", fields))
    encoded = encode_records(fields, columns)
    writer.write_block(encoded.num_rows, encoded.view_rows(0, encoded.num_rows))
    records, _ = read_container(out.getvalue())
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    assert [r["day"] for r in records] == [
        dt.date(1970, 1, 1),
        dt.date(1, 1, 1),
        dt.date(9999, 12, 31),
        None,
    ]
    assert [r["at"] for r in records] == [epoch + dt.timedelta(microseconds=m) for m in micros]
    assert [r["price"] for r in records] == [Decimal("1.2345"), None, Decimal("-9999.9999"), 0]


def test_out_of_range_values_raise_with_field_and_row() -> None:
    """Dates beyond Avro int and decimals beyond their precision are rejected, not truncated."""
    day = AvroField("day", "long", False, logical_type="date")
    with pytest.raises(ValueError, match=r"'day'.*2147483648.*row 1\b"):
        encode_records([day], [pa.array([0, 2**31], pa.int64())])
    price = AvroField("price", "decimal", True, precision=5, scale=2)
    encode_records([price], [pa.array([99_999, -99_999, None], pa.int64())])
    with pytest.raises(ValueError, match=r"'price'.*-100000.*row 2\b.*precision"):
        encode_records([price], [pa.array([1, None, -100_000], pa.int64())])


def test_input_types_and_shapes() -> None:
    """Integer columns are widened safely, chunked arrays are accepted, mismatches rejected."""
    fields = [AvroField("a", "long", False), AvroField("b", "string", False)]
    chunked = pa.chunked_array([["x"], ["yz"]])
    encoded = encode_records(fields, [pa.array([1, -2], pa.int32()), chunked])
    assert bytes(encoded.data) == b"\x02\x02x" + b"\x03\x04yz"
    with pytest.raises(TypeError, match="'a'"):
        encode_records(fields, [pa.array([1.5, 2.0]), chunked])
    with pytest.raises(TypeError, match="'b'"):
        encode_records(fields, [pa.array([1, 2]), pa.array([b"x", b"y"])])
    with pytest.raises(ValueError, match="rows"):
        encode_records(fields, [pa.array([1, 2, 3]), chunked])
    with pytest.raises(ValueError, match="columns"):
        encode_records(fields, [pa.array([1, 2])])
    with pytest.raises(pa.ArrowInvalid):
        encode_records(fields[:1], [pa.array([2**64 - 1], pa.uint64())])


def test_writer_argument_validation() -> None:
    """Bad codec, level or sync marker are refused before anything is written."""
    out = io.BytesIO()
    with pytest.raises(ValueError, match="codec"):
        AvroContainerWriter(out, {"type": "long"}, codec="snappy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sync_marker"):
        AvroContainerWriter(out, {"type": "long"}, sync_marker=b"short")
    with pytest.raises(ValueError, match="compression_level"):
        AvroContainerWriter(out, {"type": "long"}, compression_level=10)
    assert out.getvalue() == b""


def test_large_mixed_batch_matches_fastavro() -> None:
    """A benchmark-shaped batch (14 columns, nulls, multi-byte text) equals fastavro's bytes."""
    n = 2000
    rng = np.random.default_rng(7)
    fields: list[AvroField] = []
    columns: list[pa.Array] = []
    values: list[list[Any]] = []
    words = np.array(["alpha", "βeta", "γάμμα", "😀", "", "a\nb", "x\x00y"], dtype=object)
    for i in range(14):
        kind = ("long", "string", "decimal")[i % 3]
        nullable = i % 3 == 1 or i % 4 == 0
        if kind == "string":
            col: list[Any] = ["".join(rng.choice(words, 4)) for _ in range(n)]
        elif kind == "long":
            col = (rng.integers(INT64_MIN, INT64_MAX, n) >> rng.integers(0, 64, n)).tolist()
        else:
            col = rng.integers(-DECIMAL_MAX, DECIMAL_MAX, n).tolist()
        if nullable:
            col = [None if rng.random() < 0.1 else v for v in col]
        field = AvroField(f"c{i}", kind, nullable)
        fields.append(field)
        values.append(col)
        columns.append(make_array(field, col, 0, False))
    encoded = encode_records(fields, columns)
    expected = b"".join(
        fastavro_record_bytes(fields, row) for row in rows_of(fields, values, decimal_as="bytes")
    )
    assert bytes(encoded.data) == expected
    assert isinstance(encoded, EncodedBatch)


def test_double_round_trips_with_nulls() -> None:
    """Avro double: 8 little-endian bytes, nulls write nothing but the union byte."""
    values = [1.5, None, -0.0, 1e308, float("inf"), 0.1]
    fields = [AvroField("score", "double", nullable=True)]
    batch = encode_records(fields, [pa.array(values, type=pa.float64())])
    schema = record_schema("r", fields)
    parsed = fastavro.parse_schema(schema)
    expected = b""
    for value in values:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed, {"score": value})
        expected += buf.getvalue()
    assert bytes(batch.data) == expected
