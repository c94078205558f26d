"""The export's reading side: batches of rows become Arrow columns with the cyclic garbage
collector paused (the pause itself: tests/partyhelp_pipeline/test_pipelining.py)."""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from partyhelp_pipeline import export
from partyhelp_pipeline.batches import BatchContext
from partyhelp_pipeline.spec import TABLES

SPEC = TABLES["ph_venues"]
NAMES = [q.name for q in SPEC.query_plan]


@pytest.fixture(autouse=True)
def collector_running() -> Iterator[None]:
    """Every test starts with the collector running and leaves it so."""
    gc.enable()
    yield
    gc.enable()


def _context() -> BatchContext:
    return BatchContext(SPEC, SPEC.output_columns(False), dt.date(2026, 11, 25))


def _rows(first_id: int, count: int) -> list[tuple[Any, ...]]:
    key = NAMES.index(SPEC.primary_key)
    return [
        tuple(first_id + i if n == key else None for n in range(len(NAMES))) for i in range(count)
    ]


def test_rows_are_read_and_converted_with_the_collector_paused() -> None:
    seen_while_reading: list[bool] = []

    def batches() -> Iterator[tuple[Sequence[str], list[tuple[Any, ...]]]]:
        for first in (1, 101, 201):
            seen_while_reading.append(gc.isenabled())
            yield NAMES, _rows(first, 100)

    seen_between: list[bool] = []
    ids: list[int] = []
    for columns in export.arrow_batches(_context(), batches()):
        seen_between.append(gc.isenabled())
        ids.extend(columns[SPEC.primary_key].to_pylist())
    assert ids == list(range(1, 301))
    assert seen_while_reading == [False, False, False]
    assert seen_between == [True, True, True]
    assert gc.isenabled()


def test_a_failed_read_resumes_the_collector() -> None:
    def batches() -> Iterator[tuple[Sequence[str], list[tuple[Any, ...]]]]:
        yield NAMES, _rows(1, 10)
        raise ConnectionError("lost connection to MySQL")

    reader = export.arrow_batches(_context(), batches())
    next(reader)
    with pytest.raises(ConnectionError):
        next(reader)
    assert gc.isenabled()
