"""areas: one row per entry of reference.AREAS, the same for every scale and seed."""

from __future__ import annotations

from .common import REFERENCE_SETUP, Row, fmt_ts
from .reference import AREAS


def area_rows() -> list[Row]:
    """Rows of areas: ids follow the list order, never updated after their creation."""
    return [
        (str(i + 1), name, fmt_ts(REFERENCE_SETUP + i * 61), fmt_ts(REFERENCE_SETUP + i * 61))
        for i, (name, _w, _subs) in enumerate(AREAS)
    ]
