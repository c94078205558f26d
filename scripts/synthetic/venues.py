"""venues: drawn first (their attributes drive the simulation), written last.

A venue's static attributes are drawn before any lead (:func:`draw_venues`); its row comes
out only at the end of the simulation (:func:`venue_row`), when its credit balance and last
activity are final. Ids follow creation time, as AUTO_INCREMENT would; 45 % of the venues
were onboarded before the lead history starts. ~2 % have no area.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .common import DAY, HOUR, NOW, START, Draw, Row, fmt_money, fmt_ts, phone_number, slug
from .reference import (
    AREA_DRAW,
    AREA_SUBURBS,
    EMAIL_DOMAINS,
    FIRST_NAMES,
    FIRST_SLUGS,
    LAST_NAMES,
    STREETS,
    VENUE_KINDS,
    VENUE_WORDS_A,
    VENUE_WORDS_B,
)

_STATUS_DRAW = ("active",) * 78 + ("inactive",) * 14 + ("suspended",) * 5 + ("pending",) * 3
_TOPUPS = (5_000, 10_000, 10_000, 15_000, 20_000, 25_000, 50_000)  # cents


@dataclass(slots=True)
class Venue:
    """What the simulation needs to know about a venue, and the text of its row."""

    created: int
    approved: int | None  # None: still pending review
    until: int  # deactivated or suspended at; NOW + 1 while it takes leads
    status: str
    area: int | None  # index into AREAS; None for legacy venues without an area
    auto_topup: bool
    topup: int  # cents bought per top-up
    appetite: float  # probability of buying a lead it is matched with
    name: str
    contact: str
    email: str
    phone: str
    address: str
    suburb: str
    state: str
    postcode: str


def draw_venues(rng: random.Random, n: int) -> list[Venue]:
    """Draw n venues, in id (creation time) order."""
    rnd = rng.random
    created = sorted([_draw_created(rnd) for _ in range(n)])
    return [_draw_venue(rnd, c) for c in created]


def _draw_created(rnd: Draw) -> int:
    if rnd() < 0.45:  # onboarded before the lead history starts
        return START - int(rnd() * 3 * 365 * DAY)
    return START + int(rnd() * (NOW - START - 7 * DAY))


def _draw_venue(rnd: Draw, created: int) -> Venue:
    status = _STATUS_DRAW[int(rnd() * 100)]
    if created > NOW - 45 * DAY and rnd() < 0.6:
        status = "pending"  # recently signed up, not reviewed yet
    approved = None if status == "pending" else created + HOUR + int(rnd() * 7 * DAY)
    if approved is not None and approved >= NOW:
        approved, status = None, "pending"
    if status in ("inactive", "suspended") and approved is not None:
        until = approved + int(rnd() * (NOW - approved))
    else:
        until = NOW + 1
    area = AREA_DRAW[int(rnd() * len(AREA_DRAW))]
    subs = AREA_SUBURBS[area]
    suburb, state, postcode = subs[int(rnd() * len(subs))]
    kind = VENUE_KINDS[int(rnd() * len(VENUE_KINDS))]
    name = _draw_name(rnd, suburb, kind)
    contact, email, phone = _draw_contact(rnd, name)
    address = f"{1 + int(rnd() * 480)} {STREETS[int(rnd() * len(STREETS))]}"
    area_id = None if rnd() < 0.02 else area  # legacy venues without an area
    auto_topup = rnd() < 0.55
    topup = _TOPUPS[int(rnd() * len(_TOPUPS))]
    appetite = 0.12 + 0.6 * rnd() ** 1.5
    return Venue(created, approved, until, status, area_id, auto_topup, topup, appetite,
                 name, contact, email, phone, address, suburb, state, postcode)  # fmt: skip


def _draw_name(rnd: Draw, suburb: str, kind: str) -> str:
    pick = rnd()
    if pick < 0.4:
        return (
            f"{VENUE_WORDS_A[int(rnd() * len(VENUE_WORDS_A))]} "
            f"{VENUE_WORDS_B[int(rnd() * len(VENUE_WORDS_B))]} {kind}"
        )
    if pick < 0.7:
        return f"The {suburb} {VENUE_WORDS_B[int(rnd() * len(VENUE_WORDS_B))]}"
    if pick < 0.9:
        return f"{LAST_NAMES[int(rnd() * len(LAST_NAMES))]}'s {kind}"
    return f"{VENUE_WORDS_B[int(rnd() * len(VENUE_WORDS_B))]} & Co. {suburb}"


def _draw_contact(rnd: Draw, name: str) -> tuple[str, str, str]:
    """Contact name, e-mail and phone of a venue called name."""
    fi, li = int(rnd() * len(FIRST_NAMES)), int(rnd() * len(LAST_NAMES))
    contact = f"{FIRST_NAMES[fi]} {LAST_NAMES[li]}"
    domain = slug(name)[:24] or "venue"
    if rnd() < 0.7:
        email = f"{FIRST_SLUGS[fi]}@{domain}.com.au"
    else:
        email = f"{domain}.events@{EMAIL_DOMAINS[int(rnd() * len(EMAIL_DOMAINS))]}"
    if rnd() < 0.5:
        phone = phone_number(rnd)
    else:
        phone = f"(03) 9{int(rnd() * 1000):03d} {int(rnd() * 10000):04d}"
    return contact, email, phone


def venue_row(venue_id: int, v: Venue, balance: int, last_tx: int, rnd: Draw) -> Row:
    """The venue's row once the simulation is over: final balance (cents), last activity."""
    changed = 0  # when the venue was deactivated or suspended
    if v.approved is None:
        activity = None
    elif v.status == "active":
        activity = max(v.approved, last_tx, NOW - int(rnd() * 20 * DAY))  # logins
    else:
        changed = v.until
        activity = max(v.approved, last_tx, min(changed, NOW - DAY))
    updated = max(v.created, v.approved or 0, last_tx, changed, activity or 0)
    return (
        str(venue_id), v.name, v.contact, v.email, v.phone, v.address, v.suburb, v.state,
        v.postcode, None if v.area is None else str(v.area + 1), v.status, fmt_money(balance),
        None if v.approved is None else fmt_ts(v.approved),
        None if activity is None else fmt_ts(activity), fmt_ts(v.created), fmt_ts(updated),
    )  # fmt: skip
