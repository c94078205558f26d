"""Micro-benchmark of partyhelp_pipeline.avro_encoding, 14-column batch: microseconds per row.

Run from the repository root: python -m benchmarks.bench_avro_encoding [--rows N]
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from partyhelp_pipeline.avro_encoding import (
    AvroContainerWriter,
    AvroField,
    compress_block,
    encode_records,
    record_schema,
)


def make_batch(n: int, seed: int = 0) -> tuple[list[AvroField], list[pa.Array]]:
    """14 columns: 6 longs, 5 strings (10-30 chars), 2 decimals, 1 timestamp; ~1/3 nullable."""
    rng = np.random.default_rng(seed)
    fields: list[AvroField] = []
    columns: list[pa.Array] = []

    def add(field: AvroField, values: np.ndarray | list[str]) -> None:
        # Nullable columns get ~10% nulls.
        mask = rng.random(n) < 0.1 if field.nullable else None
        if isinstance(values, list):
            columns.append(pa.array(values, pa.string(), mask=mask))
        else:
            columns.append(pa.array(values, pa.int64(), mask=mask))
        fields.append(field)

    add(AvroField("id", "long", False), np.arange(1_000_000, 1_000_000 + n, dtype=np.int64))
    add(AvroField("user_id", "long", False), rng.integers(1, 5_000_000, n))
    add(AvroField("status", "long", False), rng.integers(0, 10, n))
    add(AvroField("qty", "long", True), rng.integers(-1000, 1000, n))
    add(AvroField("big", "long", False), rng.integers(-(2**62), 2**62, n))
    add(AvroField("day", "long", True, logical_type="date"), rng.integers(15000, 20000, n))
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyzé "), dtype=object)
    for i in range(5):
        lengths = rng.integers(10, 31, n)
        strings = ["".join(alphabet[rng.integers(0, len(alphabet), k)]) for k in lengths]
        add(AvroField(f"s{i}", "string", i >= 3), strings)
    add(AvroField("price", "decimal", False), rng.integers(-(10**8), 10**8, n))
    add(AvroField("tax", "decimal", True), rng.integers(0, 10**6, n))
    add(
        AvroField("created", "long", False, logical_type="timestamp-micros"),
        rng.integers(1_500_000_000_000_000, 1_800_000_000_000_000, n),
    )
    return fields, columns


def best_of(fn: Callable[[], object], repeat: int) -> float:
    """Fastest wall time of `repeat` calls, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    """Print encode and compress cost per row."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    fields, columns = make_batch(args.rows)
    batch = encode_records(fields, columns)
    encode_s = best_of(lambda: encode_records(fields, columns), args.repeat)
    raw = batch.view_rows(0, batch.num_rows)
    compress_s = best_of(lambda: compress_block(raw, 1), max(3, args.repeat // 4))

    def write_file() -> None:
        writer = AvroContainerWriter(io.BytesIO(), record_schema("bench", fields))
        writer.write_block(batch.num_rows, raw)

    write_s = best_of(write_file, max(3, args.repeat // 4))
    per_row = 1e6 / args.rows
    print(f"rows={args.rows} columns={len(fields)} bytes/row={batch.nbytes / args.rows:.1f}")
    print(f"encode_records:           {encode_s * per_row:.3f} us/row")
    print(f"compress_block (level 1): {compress_s * per_row:.3f} us/row")
    print(f"write_block (deflate):    {write_s * per_row:.3f} us/row")


if __name__ == "__main__":
    main()
