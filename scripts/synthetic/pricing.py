"""Lead prices: the base price from the pricing matrix, and the discount as the lead ages.

A lead's price at time t is ``base * (100 - d) // 100`` cents, with d the discount of the
last DISCOUNT_STEPS step reached since distribution (0 / 10 / 20 / 30 % after
0 / 48 / 96 / 168 hours). Leads and purchases both price with it.
"""

from __future__ import annotations

from .common import HOUR
from .reference import BAND_GROUP, DISCOUNT_STEPS, GUEST_BANDS, PRICE_MATRIX

# Base price in cents per tier and guest band.
BASE_CENTS: dict[str, list[int]] = {
    tier: [PRICE_MATRIX[tier][BAND_GROUP[b]] * 100 for b in range(len(GUEST_BANDS))]
    for tier in PRICE_MATRIX
}
_STEP_HOURS = [h for h, _d in DISCOUNT_STEPS]
STEP_PCT = [d for _h, d in DISCOUNT_STEPS]
STEP_PCT_TEXT = [str(d) for d in STEP_PCT]


def discount_index(t: int, dist: int) -> int:
    """Index into DISCOUNT_STEPS of the discount at time t of a lead distributed at dist."""
    h = (t - dist) // HOUR
    i = 0
    while i + 1 < len(_STEP_HOURS) and h >= _STEP_HOURS[i + 1]:
        i += 1
    return i


def discounted(base: int, step: int) -> int:
    """The price in cents of a lead of base price ``base`` at discount step ``step``."""
    return base * (100 - STEP_PCT[step]) // 100
