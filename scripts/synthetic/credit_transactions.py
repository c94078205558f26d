"""credit_transactions: the per-venue credit ledger (~1.23 rows per purchase).

Every row is written by :class:`Ledger` when its event comes out of the simulation's
queue, so ids follow time. Per venue, ``balance_after`` is the previous one plus
``amount``, from 0. The kinds of rows:

* ``topup``: the initial credit purchase when a venue is approved (85 % of venues), and,
  for venues without auto top-up, a top-up before a purchase the balance cannot pay for
  (85 % of the time; else the venue buys on credit and its balance goes negative);
* ``auto_topup``: as many top-ups as the purchase needs, for venues with auto top-up;
* ``purchase``: one per lead purchase, ``-amount_paid``, with its ``lead_purchase_id``;
* ``refund``: 2 % of purchases, 1 to 25 days later, with the purchase's id;
* ``adjustment``: 0.5 % of purchases, a manual +/- correction within 10 days.
"""

from __future__ import annotations

import random

from .common import DAY, HOUR, NOW, ChunkBuffer, fmt_money, fmt_ts
from .events import ADJUST, REFUND, Event
from .reference import ADJUST_NOTES, REFUND_NOTES, STRIPE_ALPHABET
from .venues import Venue

# Payload of a REFUND event: (venue index, lead_purchase id, amount in cents, lead id).
Refund = tuple[int, str, int, str]


class Ledger:
    """Per-venue balances (cents) and time of the last transaction; writes the rows."""

    def __init__(self, rng: random.Random, venues: list[Venue], out: ChunkBuffer) -> None:
        self.rng = rng
        self.venues = venues
        self.out = out
        self.balance = [0] * len(venues)
        self.last_tx = [0] * len(venues)
        self.last_id = 0

    def credit(
        self,
        vi: int,
        t: int,
        kind: str,
        cents: int,
        lead_purchase_id: str | None,
        stripe: str | None,
        description: str | None,
        note: str | None,
    ) -> None:
        """Write one transaction of venue index vi at time t and update its balance."""
        self.last_id += 1
        self.balance[vi] += cents
        self.last_tx[vi] = t
        s = fmt_ts(t)
        self.out.rows["credit_transactions"].append(
            (str(self.last_id), str(vi + 1), kind, fmt_money(cents), fmt_money(self.balance[vi]),
             lead_purchase_id, stripe, description, note, s, s)
        )  # fmt: skip

    def stripe_id(self) -> str:
        """A Stripe payment intent id, for the top-ups."""
        return "pi_3" + "".join(self.rng.choices(STRIPE_ALPHABET, k=23))

    def approved(self, vi: int, t: int) -> None:
        """Most venues buy credit when they are approved."""
        if self.rng.random() < 0.85:
            self.credit(vi, t, "topup", self.venues[vi].topup, None, self.stripe_id(),
                        "Initial credit purchase", None)  # fmt: skip

    def top_up_for(self, vi: int, t: int, price: int) -> None:
        """Top up venue vi before it pays price cents, if its balance is short."""
        balance = self.balance[vi]
        if balance >= price:
            return
        need = price - balance
        venue = self.venues[vi]
        amount = venue.topup
        if venue.auto_topup:
            for _ in range(-(-need // amount)):
                self.credit(vi, t, "auto_topup", amount, None, self.stripe_id(),
                            "Auto top-up", None)  # fmt: skip
        elif self.rng.random() < 0.85:
            self.credit(vi, t, "topup", amount * -(-need // amount), None, self.stripe_id(),
                        "Credit top-up", None)  # fmt: skip
        # else: the venue buys on credit and its balance goes negative.

    def follow_up(self, t: int, vi: int, purchase_id: str, price: int, lead_s: str) -> Event | None:
        """Draw whether a purchase made at t is refunded or adjusted later (before NOW)."""
        rnd = self.rng.random
        r = rnd()
        if r < 0.02:
            when = t + DAY + int(rnd() * 24 * DAY)
            refund: Refund = (vi, purchase_id, price, lead_s)
            return (when, REFUND, refund) if when <= NOW else None
        if r < 0.025:
            when = t + HOUR + int(rnd() * 10 * DAY)
            return (when, ADJUST, vi) if when <= NOW else None
        return None

    def refund(self, t: int, refund: Refund) -> None:
        """Pay a purchase back to the venue."""
        vi, purchase_id, price, lead_s = refund
        rnd = self.rng.random
        note = REFUND_NOTES[int(rnd() * len(REFUND_NOTES))] if rnd() < 0.7 else None
        self.credit(vi, t, "refund", price, purchase_id, None, f"Refund for lead #{lead_s}",
                    note)  # fmt: skip

    def adjust(self, t: int, vi: int) -> None:
        """A manual correction of venue vi's balance: $5 to $50, mostly in its favour."""
        rnd = self.rng.random
        cents = 500 * (1 + int(rnd() * 10))
        if rnd() < 0.3:
            cents = -cents
        note = ADJUST_NOTES[int(rnd() * len(ADJUST_NOTES))]
        self.credit(vi, t, "adjustment", cents, None, None, "Manual adjustment", note)
