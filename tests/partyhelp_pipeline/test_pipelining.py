"""The export's pipelining: the read-ahead thread hands over items in order, raises the
producer's error and stops when the consumer leaves; the cyclic garbage collector pause is
shared safely by chunks read in parallel threads."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Generator, Iterator

import pytest

from partyhelp_pipeline.pipelining import CyclicGcPause, pause_cyclic_gc, prefetch


@pytest.fixture(autouse=True)
def collector_running() -> Iterator[None]:
    """Every test starts with the collector running and leaves it so."""
    gc.enable()
    yield
    gc.enable()


def test_prefetch_yields_every_item_in_order_read_in_another_thread() -> None:
    readers: list[str] = []

    def items() -> Iterator[int]:
        for i in range(10):
            readers.append(threading.current_thread().name)
            yield i

    assert list(prefetch(items(), thread_name="reader")) == list(range(10))
    assert set(readers) == {"reader"}


def test_prefetch_raises_the_producers_error_after_the_items_before_it() -> None:
    def items() -> Iterator[int]:
        yield 1
        raise ConnectionError("lost connection to MySQL")

    reader = prefetch(items())
    assert next(reader) == 1
    with pytest.raises(ConnectionError, match="lost connection"):
        next(reader)


def test_prefetch_reads_at_most_depth_ahead_and_stops_when_the_consumer_leaves() -> None:
    produced: list[int] = []

    def items() -> Iterator[int]:
        for i in range(1000):
            produced.append(i)
            yield i

    reader = prefetch(items(), depth=2, thread_name="bounded-reader")
    assert isinstance(reader, Generator)
    assert next(reader) == 0
    time.sleep(0.3)  # the producer fills the buffer, then waits
    assert len(produced) <= 4  # the one handed over, two buffered, one waiting to be put
    reader.close()  # waits for the producer, which sees the stop and returns
    assert not any(t.name == "bounded-reader" for t in threading.enumerate())


def test_a_collector_stopped_by_someone_else_stays_stopped() -> None:
    gc.disable()
    with pause_cyclic_gc():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_parallel_readers_resume_the_collector_only_when_the_last_leaves() -> None:
    first_inside, second_inside, first_may_leave = (threading.Event() for _ in range(3))
    states: dict[str, bool] = {}

    def first() -> None:
        with pause_cyclic_gc():
            first_inside.set()
            first_may_leave.wait(5)
        states["after first left"] = gc.isenabled()
        second_inside.set()

    thread = threading.Thread(target=first)
    with pause_cyclic_gc():
        thread.start()
        assert first_inside.wait(5)
        first_may_leave.set()
        assert second_inside.wait(5)  # the first reader has left; this one is still inside
        states["inside second"] = gc.isenabled()
    thread.join(5)
    assert states == {"after first left": False, "inside second": False}
    assert gc.isenabled()


def test_overlapping_pauses_still_collect_other_threads_garbage() -> None:
    pause = CyclicGcPause(max_seconds=0.0)
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
