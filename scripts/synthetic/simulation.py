"""The generator: one random stream, drawn in a fixed order, through every table.

Order of the draws (changing it changes every dataset):

1. occasion_types and areas (no draws), venues' attributes, then their rooms;
2. the leads in creation order; before each lead, the queued events up to its creation
   time run (venue approvals, match rows, purchases with their top-ups, refunds and
   adjustments); each distributed lead queues its matches and purchases;
3. the events left, up to NOW;
4. the venues' rows, whose balances and activity are final only now;
5. the edge rows, if asked for (no draws).

Rows go out in chunks of about chunk_rows rows; only per-venue state and the next few
weeks of events are kept, so memory stays flat as the scale grows.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from .areas import area_rows
from .common import MAX_SCALE, MIN_LEADS, MIN_VENUES, NOW, Chunk, ChunkBuffer
from .credit_transactions import Ledger
from .edge_cases import edge_case_rows
from .events import ADJUST, APPROVE, DISTRIBUTE, PURCHASE, REFUND, EventQueue
from .lead_matches import Matches, VenuePools, match_rows
from .lead_purchases import Purchases, plan_purchases
from .leads import draw_lead, lead_time_mapper
from .occasion_types import occasion_type_rows
from .reference import AREAS, OCCASIONS
from .rooms import rooms_of
from .venues import Venue, draw_venues, venue_row

# The tables the lead loop writes: their rows decide when a chunk goes out.
_SIMULATED = ("leads", "lead_matches", "lead_purchases", "credit_transactions")


def planned_sizes(scale: float) -> dict[str, int]:
    """Return the exact counts fixed by the scale (the other tables follow the simulation)."""
    if not (0 < scale <= MAX_SCALE):
        raise ValueError(f"scale must be in (0, {MAX_SCALE:g}], got {scale!r}")
    return {
        "occasion_types": len(OCCASIONS),
        "areas": len(AREAS),
        "venues": max(MIN_VENUES, round(40 * scale)),
        "leads": max(MIN_LEADS, round(800 * scale)),
    }


def generate(
    scale: float, seed: int, edge_cases: bool = False, chunk_rows: int = 50_000
) -> Iterator[Chunk]:
    """Yield the dataset as chunks {table: rows}; about chunk_rows rows per chunk."""
    sizes = planned_sizes(scale)
    rng = random.Random(seed)
    out = ChunkBuffer()
    out.rows["occasion_types"].extend(occasion_type_rows())
    out.rows["areas"].extend(area_rows())
    venues = draw_venues(rng, sizes["venues"])
    for rows in rooms_of(rng, venues):
        out.rows["rooms"].extend(rows)
        if len(out.rows["rooms"]) >= chunk_rows:  # rooms grow with venues: chunk them too
            yield out.take()
    sim = Simulation(rng, venues, out)
    yield from sim.leads(sizes["leads"], chunk_rows)
    yield from sim.venues_last(chunk_rows)
    if edge_cases:
        for table, rows in edge_case_rows().items():
            out.rows[table].extend(rows)
    yield out.take()


class Simulation:
    """The time-ordered simulation of leads, matches, purchases and the credit ledger."""

    def __init__(self, rng: random.Random, venues: list[Venue], out: ChunkBuffer) -> None:
        self.rng = rng
        self.venues = venues
        self.out = out
        self.events = EventQueue()
        self.pools = VenuePools()
        self.ledger = Ledger(rng, venues, out)
        self.matches = Matches(out)
        self.purchases = Purchases(self.ledger, out)
        for vi, venue in enumerate(venues):
            if venue.approved is not None:
                self.events.push(venue.approved, APPROVE, vi)

    def leads(self, n_leads: int, chunk_rows: int) -> Iterator[Chunk]:
        """Create the leads in time order, then run the events left; yield full chunks."""
        lead_time = lead_time_mapper()
        rnd = self.rng.random
        for li in range(n_leads):
            created = lead_time((li + rnd()) / n_leads)
            self.run_until(created)
            if self.add_lead(li + 1, created) and self.out.count(_SIMULATED) >= chunk_rows:
                yield self.out.take()
        self.run_until(NOW)

    def add_lead(self, lead_id: int, created: int) -> bool:
        """Write the lead and queue its matches and purchases; False if not distributed."""
        row, lead = draw_lead(self.rng, lead_id, created, self.venues, self.pools)
        self.out.rows["leads"].append(row)
        if lead is None:
            return False
        rnd = self.rng.random
        matches = match_rows(rnd, lead.lead_s, lead.dist, lead.close, lead.chosen, lead.buyers)
        if matches:
            self.events.push(lead.dist, DISTRIBUTE, matches)
        purchases = plan_purchases(rnd, lead.lead_s, lead.base, lead.dist, lead.buyers)
        for when, kind, planned in purchases:
            self.events.push(when, kind, planned)
        return True

    def run_until(self, limit: int) -> None:
        """Process the queued events up to time limit, in time order (ids follow time)."""
        for t, kind, payload in self.events.pop_until(limit):
            if kind == DISTRIBUTE:
                self.matches.write(payload)
            elif kind == PURCHASE:
                follow_up = self.purchases.write(t, payload)
                if follow_up is not None:
                    self.events.push(*follow_up)
            elif kind == REFUND:
                self.ledger.refund(t, payload)
            elif kind == ADJUST:
                self.ledger.adjust(t, payload)
            else:  # APPROVE
                self.pools.approve(payload, self.venues[payload].area)
                self.ledger.approved(payload, t)

    def venues_last(self, chunk_rows: int) -> Iterator[Chunk]:
        """Write the venues' rows, with their final balances; yield full chunks."""
        rnd = self.rng.random
        rows = self.out.rows
        for vi, venue in enumerate(self.venues):
            rows["venues"].append(
                venue_row(vi + 1, venue, self.ledger.balance[vi], self.ledger.last_tx[vi], rnd)
            )
            if len(rows["venues"]) >= chunk_rows:
                yield self.out.take()
                rows = self.out.rows
