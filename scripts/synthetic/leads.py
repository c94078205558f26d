"""leads: the customers' enquiries, the clock of the simulation.

Leads are created between DATASET_START and NOW with seasonality (spring peak, January
low) and growth (:func:`lead_time_mapper`). A lead is distributed 2 to 45 minutes after
its creation, unless cancelled first (1 %) or too recent; it then closes when its last
wanted purchase comes (fulfilled), when the customer cancels it (3 %), or after
LEAD_LIFETIME (expired). Its current price and discount are those at its close (or now).
About 1.5 % use occasion keys absent from occasion_types; suburb_preferences is NULL
before 2023-03-01 and location_selections before 2023-09-01.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from .common import (
    DATASET_START,
    DAY,
    NOW,
    Draw,
    Row,
    fmt_date,
    fmt_money,
    fmt_ts,
    phone_number,
    weighted_table,
)
from .lead_matches import VenuePools, choose_venues
from .lead_purchases import Buyer, draw_buyers
from .pricing import BASE_CENTS, STEP_PCT_TEXT, discount_index, discounted
from .reference import (
    ABSENT_OCCASIONS,
    AREA_DRAW,
    AREA_SUBURBS,
    BAND_WEIGHTS,
    EMAIL_DOMAINS,
    FIRST_NAMES,
    FIRST_SLUGS,
    GUEST_BANDS,
    LAST_NAMES,
    LAST_SLUGS,
    LEAD_LIFETIME,
    OCCASIONS,
)
from .venues import Venue

_OCCASION_CHOICES = [(k, tier) for k, _l, _a, _w, tier in OCCASIONS] + [
    (k, tier) for k, _w, tier in ABSENT_OCCASIONS
]
_OCCASION_DRAW = weighted_table(
    [w for *_x, w, _t in OCCASIONS] + [w for _k, w, _t in ABSENT_OCCASIONS]
)
_BAND_DRAW = {tier: weighted_table(w) for tier, w in BAND_WEIGHTS.items()}
_BANDS = [(d, lo, hi - lo + 1) for d, lo, hi in GUEST_BANDS]  # (display, low, width)
_SUBURB_JSON = [[f'"{s}"' for s, _st, _pc in subs] for subs in AREA_SUBURBS]
_LOCATION_JSON = [
    [f'{{"area_id": {a + 1}, "suburb": "{s}"}}' for s, _st, _pc in subs]
    for a, subs in enumerate(AREA_SUBURBS)
]
_TARGETS = (3,) * 15 + (4,) * 2 + (5,) * 2 + (2,)  # purchase_target
_FEATURE_PREFS = int(datetime(2023, 3, 1, tzinfo=UTC).timestamp())
_FEATURE_LOCS = int(datetime(2023, 9, 1, tzinfo=UTC).timestamp())


@dataclass(slots=True)
class Distribution:
    """A distributed lead, as its matches and purchases need it."""

    lead_s: str
    base: int  # base price, cents
    dist: int  # distributed at
    close: int | None  # fulfilled, cancelled or expired at; None while open
    chosen: list[int]  # venue indexes it was sent to, in notification order
    buyers: list[Buyer]


def draw_lead(
    rng: random.Random, lead_id: int, created: int, venues: list[Venue], pools: VenuePools
) -> tuple[Row, Distribution | None]:
    """The lead's row, and its distribution (None if it was never distributed)."""
    rnd = rng.random
    occasion, tier, guests, display, band = _draw_occasion(rnd)
    base = BASE_CENTS[tier][band]
    first, last, email, phone = _draw_contact(rnd)
    preferred = _draw_preferred_date(rnd, occasion, created)
    area, suburb, prefs, locs = _draw_places(rnd, created)
    target = _TARGETS[int(rnd() * len(_TARGETS))]
    head: Row = (str(lead_id), first, last, email, phone, occasion, guests, display, preferred,
                 suburb, prefs, locs)  # fmt: skip

    r = rnd()
    dist = created + 120 + int(rnd() * 2580)
    if r < 0.01 or dist > NOW:
        # Cancelled before distribution, or too recent to be distributed yet.
        if r < 0.01:
            status, updated = "cancelled", min(NOW, created + 600 + int(rnd() * 2 * DAY))
        else:
            status, updated = "new", created
        return (*head, status, fmt_money(base), fmt_money(base), "0", str(target), "0", None,
                None, None, fmt_ts(created), fmt_ts(updated)), None  # fmt: skip

    expires = dist + LEAD_LIFETIME
    cancel = dist + int(rnd() * 12 * DAY) if rnd() < 0.03 else None
    stop = min(expires, NOW + 1 if cancel is None else min(cancel, NOW + 1))
    chosen = choose_venues(rng, pools, venues, area, dist)
    buyers = draw_buyers(rnd, venues, chosen, dist, stop, target)
    close, status, fulfilled = _close(buyers, target, expires, cancel)
    step = discount_index(close if close is not None else NOW, dist)
    updated = max(dist, buyers[-1][0] if buyers else dist, close or dist)
    row = (*head, status, fmt_money(base), fmt_money(discounted(base, step)), STEP_PCT_TEXT[step],
           str(target), str(len(buyers)), fmt_ts(dist),
           None if fulfilled is None else fmt_ts(fulfilled), fmt_ts(expires), fmt_ts(created),
           fmt_ts(updated))  # fmt: skip
    return row, Distribution(str(lead_id), base, dist, close, chosen, buyers)


def _close(
    buyers: list[Buyer], target: int, expires: int, cancel: int | None
) -> tuple[int | None, str, int | None]:
    """(closed at or None, status, fulfilled at or None) of a distributed lead."""
    n_bought = len(buyers)
    fulfilled = buyers[-1][0] if n_bought == target and n_bought else None
    if fulfilled is not None:
        return fulfilled, "fulfilled", fulfilled
    if cancel is not None and cancel < expires and cancel <= NOW:
        return cancel, "cancelled", None
    if expires <= NOW:
        return expires, "expired", None
    return None, ("partially_fulfilled" if n_bought else "distributed"), None


def _draw_occasion(rnd: Draw) -> tuple[str, str, str | None, str | None, int]:
    """(occasion key, tier, guest_count, guest_count_display, guest band index)."""
    key, tier = _OCCASION_CHOICES[_OCCASION_DRAW[int(rnd() * len(_OCCASION_DRAW))]]
    bands = _BAND_DRAW[tier]
    band = bands[int(rnd() * len(bands))]
    display, low, width = _BANDS[band]
    guests = None if rnd() < 0.02 else str(low + int(rnd() * width))
    return key, tier, guests, None if rnd() < 0.03 else display, band


def _draw_contact(rnd: Draw) -> tuple[str | None, str | None, str | None, str | None]:
    """(first_name, last_name, email, phone) of the customer."""
    fi, li = int(rnd() * len(FIRST_NAMES)), int(rnd() * len(LAST_NAMES))
    first = None if rnd() < 0.005 else FIRST_NAMES[fi]
    last = None if rnd() < 0.03 else LAST_NAMES[li]
    r = rnd()
    if r < 0.005:
        email = None
    elif r < 0.6:
        email = (
            f"{FIRST_SLUGS[fi]}.{LAST_SLUGS[li]}@{EMAIL_DOMAINS[int(rnd() * len(EMAIL_DOMAINS))]}"
        )
    else:
        email = (
            f"{FIRST_SLUGS[fi]}{LAST_SLUGS[li][:1]}{int(rnd() * 100)}"
            f"@{EMAIL_DOMAINS[int(rnd() * len(EMAIL_DOMAINS))]}"
        )
    phone = None if rnd() < 0.06 else phone_number(rnd)
    return first, last, email, phone


def _draw_preferred_date(rnd: Draw, occasion: str, created: int) -> str | None:
    """preferred_date: 10 to 270 days ahead; Christmas parties late November to Christmas."""
    if occasion == "christmas_party":
        year = datetime.fromtimestamp(created, UTC).year
        day = int(datetime(year, 11, 24, tzinfo=UTC).timestamp()) + int(rnd() * 28) * DAY
        if day < created + 7 * DAY:
            day += 365 * DAY
    else:
        day = created + (10 + int(rnd() * 260)) * DAY
    return None if rnd() < 0.02 else fmt_date(day)


def _draw_places(rnd: Draw, created: int) -> tuple[int, str | None, str | None, str | None]:
    """(area index, suburb, suburb_preferences JSON, location_selections JSON)."""
    area = AREA_DRAW[int(rnd() * len(AREA_DRAW))]
    subs = AREA_SUBURBS[area]
    si = int(rnd() * len(subs))
    suburb = None if rnd() < 0.01 else subs[si][0]
    picks = [si]
    for _ in range(int(rnd() * 3)):
        j = int(rnd() * len(subs))
        if j not in picks:
            picks.append(j)
    if created < _FEATURE_PREFS:
        prefs = None
    elif rnd() < 0.01:
        prefs = "[]"
    else:
        prefs = "[" + ", ".join([_SUBURB_JSON[area][j] for j in picks]) + "]"
    if created < _FEATURE_LOCS:
        locs = None
    else:
        locs = "[" + ", ".join([_LOCATION_JSON[area][j] for j in picks]) + "]"
    return area, suburb, prefs, locs


def lead_time_mapper() -> Callable[[float], int]:
    """Map u in [0, 1) to a lead creation time with seasonality and growth (monotone)."""
    bounds: list[int] = []
    y, m = DATASET_START.year, DATASET_START.month
    while True:
        t = int(datetime(y, m, 1, tzinfo=UTC).timestamp())
        bounds.append(min(t, NOW))
        if t >= NOW:
            break
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    # Spring (Sep-Nov) is the party-planning peak; January is quiet.
    season = (0.7, 0.8, 1.0, 0.9, 0.9, 0.8, 0.8, 1.0, 1.2, 1.3, 1.3, 0.9)
    n = len(bounds) - 1
    weights = []
    for j in range(n):
        month = datetime.fromtimestamp(bounds[j], UTC).month
        weights.append(season[month - 1] * (1.0 + 0.8 * j / n) * (bounds[j + 1] - bounds[j]))
    cum = [0.0]
    for w in weights:
        cum.append(cum[-1] + w)
    total = cum[-1]

    def at(u: float) -> int:
        target = u * total
        j = min(bisect.bisect_right(cum, target) - 1, n - 1)
        frac = (target - cum[j]) / weights[j]
        return bounds[j] + int(frac * (bounds[j + 1] - bounds[j]))

    return at
