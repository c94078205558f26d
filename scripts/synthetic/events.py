"""The simulation's event queue: events come out in time order, ties in the order queued.

Ids increase with time in every simulated table because rows are written as their events
come out of this queue.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Any

# Event kinds. The payload of each: APPROVE a venue index; DISTRIBUTE the lead's match
# rows without ids; PURCHASE a lead_purchases.Planned; REFUND and ADJUST see
# credit_transactions.Ledger.
APPROVE, DISTRIBUTE, PURCHASE, REFUND, ADJUST = range(5)

Event = tuple[int, int, Any]  # (time, kind, payload)


class EventQueue:
    """A heap of (time, sequence number, kind, payload); the sequence breaks ties."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, int, Any]] = []
        self._seq = 0

    def push(self, t: int, kind: int, payload: Any) -> None:
        """Queue an event at time t."""
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, kind, payload))

    def pop_until(self, limit: int) -> Iterator[Event]:
        """Yield the queued events up to time limit, including those queued meanwhile."""
        heap = self._heap
        while heap and heap[0][0] <= limit:
            t, _seq, kind, payload = heapq.heappop(heap)
            yield t, kind, payload
