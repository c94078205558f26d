"""Lookup joins in Arrow: a small table read once per chunk, joined to each batch.

A ``Join.lookup`` table (venues, areas: thousands of rows against millions of purchases)
is read whole in the chunk's snapshot, before its rows stream, and each batch takes its
columns by key. The server then scans the driving table without probing an index per row
for these joins, the largest part of its CPU (``docs/BENCHMARKS.md``), and sends each
lookup value once per chunk instead of once per row. The values are the ones a LEFT JOIN
in the same snapshot gives: the same wire SQL, NULL where no key matches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from partyhelp_pipeline.batches import BatchContext, to_columns, wire_types
from partyhelp_pipeline.errors import BadDataError
from partyhelp_pipeline.source import stream_rows
from partyhelp_pipeline.spec import LOOKUP_KEY, Lookup
from partyhelp_pipeline.spec.sql import lookup_query

LOOKUP_BATCH_ROWS = 5_000  # rows held as Python objects at once while a lookup is read


@dataclass(frozen=True)
class LookupTable:
    """A lookup's rows in Arrow, sorted by their unique key."""

    lookup: Lookup
    keys: np.ndarray  # int64, ascending
    columns: dict[str, pa.Array]  # each in the order of ``keys``

    def positions(self, parent: pa.Array) -> pa.Array:
        """For each parent value, the index of its row here; NULL where none matches (or
        the parent is NULL), as a LEFT JOIN leaves it."""
        if not len(self.keys):
            return pa.nulls(len(parent), pa.int64())
        values = np.asarray(parent.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
        index = np.minimum(np.searchsorted(self.keys, values), len(self.keys) - 1)
        found = (self.keys[index] == values) & parent.is_valid().to_numpy(zero_copy_only=False)
        return pa.array(index, type=pa.int64(), mask=~found)

    def join(self, columns: dict[str, pa.Array]) -> None:
        """Add this lookup's columns to one batch of the main query's columns."""
        positions = self.positions(columns[self.lookup.parent_column])
        for name, array in self.columns.items():
            columns[name] = array.take(positions)


def read_lookup(
    connection: Any, driver: str, context: BatchContext, lookup: Lookup, params: Mapping[str, Any]
) -> LookupTable:
    """Read one lookup's rows in the connection's snapshot into Arrow, sorted by key."""
    pieces: list[dict[str, pa.Array]] = []
    sql = lookup_query(context.spec, lookup)
    for names, rows in stream_rows(connection, driver, sql, params, LOOKUP_BATCH_ROWS):
        pieces.append(to_columns(context, names, rows, key_name=LOOKUP_KEY))
    names = [LOOKUP_KEY, *(q.name for q in lookup.columns)]
    whole = {
        name: pa.concat_arrays([p[name] for p in pieces]) if pieces else pa.array([], type=kind)
        for name, kind in zip(names, wire_types(context.spec, names), strict=True)
    }
    return _sorted(context, lookup, whole)


def _sorted(context: BatchContext, lookup: Lookup, whole: dict[str, pa.Array]) -> LookupTable:
    """The rows with a key, in key order; a key held twice fails, as the join would repeat
    the main query's rows."""
    key_array = whole.pop(LOOKUP_KEY)
    valid = np.flatnonzero(key_array.is_valid().to_numpy(zero_copy_only=False))
    keys = np.asarray(key_array.fill_null(0).to_numpy(), dtype=np.int64)[valid]
    order = valid[np.argsort(keys, kind="stable")]
    keys = np.sort(keys, kind="stable")
    repeated = np.flatnonzero(keys[1:] == keys[:-1])
    if len(repeated):
        join = lookup.join
        raise BadDataError(
            f"{context.spec.name}: lookup {join.table} holds {join.key} {keys[repeated[0]]} "
            f"more than once; a lookup's key must be unique",
            table=context.spec.name,
            column=join.key,
            row_id=int(keys[repeated[0]]),
        )
    taken = pa.array(order, type=pa.int64())
    columns = {name: array.take(taken) for name, array in whole.items()}
    return LookupTable(lookup, keys, columns)


def read_lookups(
    connection: Any, driver: str, context: BatchContext, params: Mapping[str, Any]
) -> Sequence[LookupTable]:
    """Every lookup of the context's table, read in the connection's snapshot."""
    return [
        read_lookup(connection, driver, context, lookup, params) for lookup in context.spec.lookups
    ]
