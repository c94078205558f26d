"""lead_purchases: ~2.2 per lead, never more than the lead's purchase_target.

When a lead is distributed, each matched venue buys it with probability its appetite,
after a roughly exponential delay (mean ~24 h, at least 5 minutes), while the lead is open
(:func:`draw_buyers`). The earliest ``purchase_target`` buyers get it. Each purchase is
planned then (:func:`plan_purchases`: price at that time, the venue's follow-up status)
and written when its time comes (:class:`Purchases`), after a top-up if the venue's
balance is short, together with its ``purchase`` credit transaction.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from .common import DAY, HOUR, NOW, ChunkBuffer, Draw, fmt_money, fmt_ts
from .credit_transactions import Ledger
from .events import PURCHASE, Event
from .pricing import STEP_PCT_TEXT, discount_index, discounted
from .venues import Venue

Buyer = tuple[int, int]  # (time of purchase, venue index)


class Planned(NamedTuple):
    """A purchase waiting for its time: the payload of a PURCHASE event."""

    lead_s: str
    vi: int
    price: int  # cents
    discount_s: str
    lead_status: str
    updated_s: str


def draw_buyers(
    rnd: Draw, venues: list[Venue], chosen: list[int], dist: int, stop: int, target: int
) -> list[Buyer]:
    """The venues among chosen that buy the lead before stop, earliest first, at most target."""
    buyers = []
    for vi in chosen:
        if rnd() < venues[vi].appetite:
            # Purchase delays are roughly exponential, mean ~24 h, at least 5 minutes.
            when = dist + 300 + int(-math.log(1.0 - rnd()) * 24 * HOUR)
            if when < stop:
                buyers.append((when, vi))
    buyers.sort()
    del buyers[target:]
    return buyers


def plan_purchases(
    rnd: Draw, lead_s: str, base: int, dist: int, buyers: list[Buyer]
) -> list[Event]:
    """PURCHASE events of a lead of base price base (cents) distributed at dist."""
    events: list[Event] = []
    for when, vi in buyers:
        step = discount_index(when, dist)
        age = NOW - when
        lead_status = _lead_status(rnd(), age)
        upd = when if lead_status == "pending" else when + int(rnd() * min(age, 20 * DAY))
        planned = Planned(lead_s, vi, discounted(base, step), STEP_PCT_TEXT[step], lead_status,
                          fmt_ts(upd))  # fmt: skip
        events.append((when, PURCHASE, planned))
    return events


def _lead_status(r: float, age: int) -> str:
    """What the venue has done with a lead it bought age seconds ago (r uniform in [0, 1))."""
    if age < 3 * DAY:
        return "pending" if r < 0.6 else "contacted"
    if age < 21 * DAY:
        return ("contacted", "contacted", "quoted", "quoted", "pending", "lost",
                "booked")[int(r * 7)]  # fmt: skip
    return ("booked", "booked", "booked", "lost", "lost", "lost", "lost", "quoted",
            "contacted", "pending")[int(r * 10)]  # fmt: skip


class Purchases:
    """Writes the lead_purchases rows (and their ledger entries) as their events come."""

    def __init__(self, ledger: Ledger, out: ChunkBuffer) -> None:
        self.ledger = ledger
        self.out = out
        self.last_id = 0

    def write(self, t: int, p: Planned) -> Event | None:
        """Write the purchase p made at t; return its refund or adjustment event, if any."""
        self.ledger.top_up_for(p.vi, t, p.price)
        self.last_id += 1
        pid = str(self.last_id)
        s = fmt_ts(t)
        self.out.rows["lead_purchases"].append(
            (pid, p.lead_s, str(p.vi + 1), fmt_money(p.price), p.discount_s, p.lead_status, s,
             p.updated_s)
        )  # fmt: skip
        self.ledger.credit(p.vi, t, "purchase", -p.price, pid, None,
                           f"Lead #{p.lead_s} purchased", None)  # fmt: skip
        return self.ledger.follow_up(t, p.vi, pid, p.price, p.lead_s)
