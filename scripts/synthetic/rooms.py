"""rooms: 1 to 4 per venue (~2.3 on average), drawn right after the venues.

Ids follow the venues' ids. A room is created within 20 days of its venue and edited at
most 400 days later; ~8 % have no style and ~5 % no capacity.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from .common import DAY, NOW, Row, fmt_ts
from .reference import ROOM_NAMES, ROOM_STYLES
from .venues import Venue

_ROOM_COUNTS = (1, 1, 2, 2, 2, 3, 3, 4)


def rooms_of(rng: random.Random, venues: list[Venue]) -> Iterator[list[Row]]:
    """Yield the rooms of each venue in turn, in id order."""
    next_id = 1
    for vi, venue in enumerate(venues):
        rows = venue_rooms(rng, vi + 1, venue.created, next_id)
        next_id += len(rows)
        yield rows


def venue_rooms(rng: random.Random, venue_id: int, venue_created: int, first_id: int) -> list[Row]:
    """The rooms of one venue, with ids from first_id."""
    rnd = rng.random
    k = _ROOM_COUNTS[int(rnd() * len(_ROOM_COUNTS))]
    rows: list[Row] = []
    for i, name in enumerate(rng.sample(ROOM_NAMES, k)):
        created = venue_created + int(rnd() * 20 * DAY)
        updated = min(NOW, created + int(rnd() * 400 * DAY))
        style = None if rnd() < 0.08 else ROOM_STYLES[int(rnd() * len(ROOM_STYLES))]
        cap = None if rnd() < 0.05 else str(10 * (2 + int(rnd() * 40)))
        rows.append(
            (str(first_id + i), str(venue_id), name, style, cap, fmt_ts(created), fmt_ts(updated))
        )
    return rows
