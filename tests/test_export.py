"""The export's reading side: batches of rows become Arrow columns with the cyclic garbage
collector paused, and the pause is shared safely by chunks read in parallel threads."""

from __future__ import annotations

import datetime as dt
import gc
import threading
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
    for columns in export._arrow_batches(_context(), batches()):
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

    reader = export._arrow_batches(_context(), batches())
    next(reader)
    with pytest.raises(ConnectionError):
        next(reader)
    assert gc.isenabled()


def test_a_collector_stopped_by_someone_else_stays_stopped() -> None:
    gc.disable()
    with export._gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_parallel_readers_resume_the_collector_only_when_the_last_leaves() -> None:
    first_inside, second_inside, first_may_leave = (threading.Event() for _ in range(3))
    states: dict[str, bool] = {}

    def first() -> None:
        with export._gc_paused():
            first_inside.set()
            first_may_leave.wait(5)
        states["after first left"] = gc.isenabled()
        second_inside.set()

    thread = threading.Thread(target=first)
    with export._gc_paused():
        thread.start()
        assert first_inside.wait(5)
        first_may_leave.set()
        assert second_inside.wait(5)  # the first reader has left; this one is still inside
        states["inside second"] = gc.isenabled()
    thread.join(5)
    assert states == {"after first left": False, "inside second": False}
    assert gc.isenabled()


def test_overlapping_pauses_still_collect_other_threads_garbage() -> None:
    pause = export._CyclicGcPause(max_seconds=0.0)
    collected: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            collected.append(info["generation"])

    gc.callbacks.append(record)
    try:
        with pause():
            with pause():  # a second chunk's read, overlapping the first
                pass
            assert not gc.isenabled()  # the first still reads
            assert collected == [1]  # ...but the overdue pause collected the young ones
        assert gc.isenabled()
    finally:
        gc.callbacks.remove(record)
