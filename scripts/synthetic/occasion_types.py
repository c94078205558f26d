"""occasion_types: one row per entry of reference.OCCASIONS, the same for every scale and seed.

Ids follow the list order; ``school_reunion`` is inactive. Labels were edited once in a
while after the launch (every third row has a later updated_at).
"""

from __future__ import annotations

from .common import DAY, REFERENCE_SETUP, Row, fmt_ts
from .reference import OCCASIONS


def occasion_type_rows() -> list[Row]:
    """Rows of occasion_types."""
    rows: list[Row] = []
    for i, (key, label, active, _w, _tier) in enumerate(OCCASIONS):
        created = REFERENCE_SETUP + i * 97
        updated = created + (200 + i * 13) * DAY if i % 3 == 0 else created
        rows.append(
            (str(i + 1), key, label, str(active), str((i + 1) * 10), fmt_ts(created),
             fmt_ts(updated))
        )  # fmt: skip
    return rows
