"""lead_matches: the venues a lead is sent to (~7.0 per lead).

A distributed lead goes to 4 to 12 approved venues of its area, or of anywhere when its
area has too few (:func:`choose_venues`); venues deactivated or suspended by then drop
out. The rows are drawn with the lead (:func:`match_rows`) and written, with their ids, at
distribution time (:class:`Matches`). A match's status follows from the purchases:
``purchased`` exactly for the (lead, venue) pairs of purchases, else ``declined``,
``expired``, ``viewed`` or ``notified``. Matches before 2023 have no score.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

from .common import DAY, HOUR, NOW, ChunkBuffer, Draw, Row, fmt_money, fmt_ts
from .lead_purchases import Buyer
from .reference import AREAS
from .venues import Venue

# Scores appeared with the matching engine v2 (2023); older matches have none.
_FEATURE_SCORE = int(datetime(2023, 1, 1, tzinfo=UTC).timestamp())
_MATCHES_PER_LEAD = (4, 5, 6, 6, 7, 7, 8, 8, 8, 9, 9, 10, 10, 11, 12)


class VenuePools:
    """The approved venues, all of them and per area: who a lead can be sent to."""

    def __init__(self) -> None:
        self.eligible: list[int] = []
        self.by_area: list[list[int]] = [[] for _ in AREAS]

    def approve(self, vi: int, area: int | None) -> None:
        """Venue index vi (in area, if any) starts receiving leads."""
        self.eligible.append(vi)
        if area is not None:
            self.by_area[area].append(vi)


def choose_venues(
    rng: random.Random, pools: VenuePools, venues: list[Venue], area: int, dist: int
) -> list[int]:
    """Venue indexes a lead of area distributed at dist is sent to, in notification order."""
    k = _MATCHES_PER_LEAD[int(rng.random() * len(_MATCHES_PER_LEAD))]
    pool = pools.by_area[area]
    if len(pool) < 2 * k:
        pool = pools.eligible  # small areas borrow venues from everywhere
    chosen = pool[:] if len(pool) <= k else rng.sample(pool, k)
    return [vi for vi in chosen if venues[vi].until > dist]


def match_rows(
    rnd: Draw, lead_s: str, dist: int, close: int | None, chosen: list[int], buyers: list[Buyer]
) -> list[Row]:
    """The lead's match rows without their ids (given at distribution time)."""
    bought = {vi: when for when, vi in buyers}
    horizon = NOW if close is None else close
    rows: list[Row] = []
    st: str
    v_s: str | None
    p_s: str | None
    for j, vi in enumerate(chosen):
        notified = dist + j  # notifications go out one by one
        score = None if dist < _FEATURE_SCORE else fmt_money(4000 + int(rnd() * 6000))
        when = bought.get(vi)
        if when is not None:
            viewed = max(notified + 30, when - int(rnd() * 3 * HOUR))
            st, v_s, p_s, upd = "purchased", fmt_ts(viewed), fmt_ts(when), when
        else:
            st, v_s, p_s, upd = _unbought(rnd, notified, horizon, close)
        n_s = fmt_ts(notified)
        rows.append((lead_s, str(vi + 1), score, st, n_s, v_s, p_s, n_s, fmt_ts(min(upd, NOW))))
    return rows


def _unbought(
    rnd: Draw, notified: int, horizon: int, close: int | None
) -> tuple[str, str | None, None, int]:
    """(status, viewed_at, purchased_at, updated) of a match whose venue did not buy."""
    viewed = notified + int(rnd() * 3 * DAY)
    seen = rnd() < 0.55 and viewed < horizon
    if rnd() < 0.12 and viewed < horizon:
        return "declined", fmt_ts(viewed), None, viewed + 60
    if close is not None:
        return "expired", fmt_ts(viewed) if seen else None, None, close
    if seen:
        return "viewed", fmt_ts(viewed), None, viewed
    return "notified", None, None, notified


class Matches:
    """Writes the lead_matches rows, numbering them, when their lead is distributed."""

    def __init__(self, out: ChunkBuffer) -> None:
        self.out = out
        self.last_id = 0

    def write(self, rows: list[Row]) -> None:
        """Write one lead's match rows."""
        out = self.out.rows["lead_matches"]
        for row in rows:
            self.last_id += 1
            out.append((str(self.last_id), *row))
