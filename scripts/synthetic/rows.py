"""Pure helpers over the generated data, for tests and checks: rows as dicts, counts,
checksums comparable with MariaDB's, and rows converted to typed values."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from .common import COLUMNS, KINDS, TABLES, Row
from .simulation import generate


def iter_rows(
    table: str, scale: float, seed: int, edge_cases: bool = False
) -> Iterator[dict[str, str | None]]:
    """Yield one table's rows as {column: text or None} (runs the whole simulation)."""
    cols = COLUMNS[table]
    for chunk in generate(scale, seed, edge_cases):
        for row in chunk[table]:
            yield dict(zip(cols, row, strict=True))


def count_rows(scale: float, seed: int, edge_cases: bool = False) -> dict[str, int]:
    """Return the number of rows per table that generate() produces."""
    counts = dict.fromkeys(TABLES, 0)
    for chunk in generate(scale, seed, edge_cases):
        for table, rows in chunk.items():
            counts[table] += len(rows)
    return counts


def row_checksum(row: Row) -> int:
    """CRC32 of the row joined like CONCAT_WS('|', ...) (NULLs skipped), as MariaDB computes."""
    return zlib.crc32("|".join([v for v in row if v is not None]).encode())


def checksum_sql(table: str) -> str:
    """SQL returning (row count, sum of row CRC32s) comparable with table_checksums()."""
    cols = ", ".join(f"`{c}`" for c in COLUMNS[table])
    return f"SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('|', {cols}))), 0) FROM `{table}`"


def table_checksums(
    scale: float, seed: int, edge_cases: bool = False
) -> dict[str, tuple[int, int]]:
    """Return {table: (row count, sum of row_checksum)} of the generated dataset."""
    out = {t: (0, 0) for t in TABLES}
    for chunk in generate(scale, seed, edge_cases):
        for table, rows in chunk.items():
            n, s = out[table]
            out[table] = (n + len(rows), s + sum(map(row_checksum, rows)))
    return out


def to_python(table: str, row: Row) -> dict[str, Any]:
    """Convert a row to typed values: int, Decimal, datetime (UTC), date, str or None.

    Zero and partial-zero dates ('0000-00-00', '2024-05-00') cannot be represented and stay
    strings, exactly as stored.
    """
    out: dict[str, Any] = {}
    for (col, kind), v in zip(KINDS[table].items(), row, strict=True):
        if v is None or kind in ("str", "json"):
            out[col] = v
        elif kind == "int":
            out[col] = int(v)
        elif kind == "dec":
            out[col] = Decimal(v)
        elif kind == "ts":
            out[col] = v if v.startswith("0000") else datetime.fromisoformat(v).replace(tzinfo=UTC)
        else:  # date
            try:
                out[col] = date.fromisoformat(v)
            except ValueError:
                out[col] = v
    return out
