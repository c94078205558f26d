"""Overlapping the export's stages: read ahead in a thread while the current item is worked
on, and pause Python's cyclic garbage collector while a batch of rows exists as tuples.

Both are plain mechanisms with no knowledge of MySQL, Arrow or Avro: ``export.py`` composes
them with its stages.
"""

from __future__ import annotations

import contextlib
import gc
import queue
import threading
import time
from collections.abc import Iterator
from typing import TypeVar, cast

T = TypeVar("T")


def prefetch(items: Iterator[T], depth: int = 2, thread_name: str = "prefetch") -> Iterator[T]:
    """Yield ``items``, produced up to ``depth`` ahead in a thread (a database driver waits on
    the network without the GIL while the consumer works). The producer's error is raised
    here; leaving early stops the producer."""
    buffer: queue.Queue[object] = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
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

    thread = threading.Thread(target=produce, name=thread_name, daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield cast(T, item)  # anything else ``produce`` put is an item
    finally:
        stop.set()
        thread.join(timeout=30)


class CyclicGcPause:
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


# One pause for the process: the collector is process-wide, so every reader shares it.
pause_cyclic_gc = CyclicGcPause()
