"""What every table shares: the row layout, the id ranges, the dataset's clock and the small
formatting and drawing helpers (hot paths: keep them tiny)."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from functools import cache

# A row is a tuple of the texts MariaDB returns for its values (None for NULL).
Row = tuple[str | None, ...]
# One chunk of generated data: {table: rows}, with every table present.
Chunk = dict[str, list[Row]]
# A source of uniform floats in [0, 1): random.Random.random of the one generator.
Draw = Callable[[], float]

TABLES: tuple[str, ...] = (
    "occasion_types",
    "areas",
    "venues",
    "rooms",
    "leads",
    "lead_matches",
    "lead_purchases",
    "credit_transactions",
)

# Column name -> kind. Kinds drive to_python() and the NOT NULL checks of edge rows.
# Order is the row tuple order (and the LOAD DATA column list), not the DDL's order.
KINDS: dict[str, dict[str, str]] = {
    "occasion_types": {
        "id": "int", "key": "str", "label": "str", "is_active": "int", "sort_order": "int",
        "created_at": "ts", "updated_at": "ts",
    },
    "areas": {"id": "int", "name": "str", "created_at": "ts", "updated_at": "ts"},
    "venues": {
        "id": "int", "business_name": "str", "contact_name": "str", "contact_email": "str",
        "contact_phone": "str", "address": "str", "suburb": "str", "state": "str",
        "postcode": "str", "area_id": "int", "status": "str", "credit_balance": "dec",
        "approved_at": "ts", "last_activity_at": "ts", "created_at": "ts", "updated_at": "ts",
    },
    "rooms": {
        "id": "int", "venue_id": "int", "name": "str", "style": "str", "capacity": "int",
        "created_at": "ts", "updated_at": "ts",
    },
    "leads": {
        "id": "int", "first_name": "str", "last_name": "str", "email": "str", "phone": "str",
        "occasion_type": "str", "guest_count": "int", "guest_count_display": "str",
        "preferred_date": "date", "suburb": "str", "suburb_preferences": "json",
        "location_selections": "json", "status": "str", "base_price": "dec",
        "current_price": "dec", "discount_percent": "int", "purchase_target": "int",
        "purchase_count": "int", "distributed_at": "ts", "fulfilled_at": "ts",
        "expires_at": "ts", "created_at": "ts", "updated_at": "ts",
    },
    "lead_matches": {
        "id": "int", "lead_id": "int", "venue_id": "int", "match_score": "dec",
        "status": "str", "notified_at": "ts", "viewed_at": "ts", "purchased_at": "ts",
        "created_at": "ts", "updated_at": "ts",
    },
    "lead_purchases": {
        "id": "int", "lead_id": "int", "venue_id": "int", "amount_paid": "dec",
        "discount_percent": "int", "lead_status": "str", "created_at": "ts",
        "updated_at": "ts",
    },
    "credit_transactions": {
        "id": "int", "venue_id": "int", "type": "str", "amount": "dec",
        "balance_after": "dec", "lead_purchase_id": "int", "stripe_payment_intent_id": "str",
        "description": "str", "admin_note": "str", "created_at": "ts", "updated_at": "ts",
    },
}  # fmt: skip

COLUMNS: dict[str, tuple[str, ...]] = {t: tuple(k) for t, k in KINDS.items()}

# NOT NULL columns per SOURCE_SCHEMA.md (everything else is nullable).
NOT_NULL: dict[str, frozenset[str]] = {
    "occasion_types": frozenset({"id", "key", "label", "is_active", "sort_order"}),
    "areas": frozenset({"id", "name"}),
    "venues": frozenset({"id", "business_name", "status", "credit_balance"}),
    "rooms": frozenset({"id", "venue_id", "name"}),
    "leads": frozenset(
        {"id", "occasion_type", "status", "discount_percent", "purchase_target", "purchase_count"}
    ),
    "lead_matches": frozenset({"id", "lead_id", "venue_id", "status"}),
    "lead_purchases": frozenset(
        {"id", "lead_id", "venue_id", "amount_paid", "discount_percent", "lead_status"}
    ),
    "credit_transactions": frozenset({"id", "venue_id", "type", "amount", "balance_after"}),
}

EDGE_ID_BASE = 900_000_000
MISSING_LEAD_PURCHASE_ID = EDGE_ID_BASE + 96
MISSING_LEAD_ID = EDGE_ID_BASE + 97
MISSING_VENUE_ID = EDGE_ID_BASE + 98
MISSING_AREA_ID = EDGE_ID_BASE + 99

DATASET_START = datetime(2022, 7, 1, tzinfo=UTC)
DATASET_NOW = datetime(2026, 11, 1, tzinfo=UTC)
START = int(DATASET_START.timestamp())
NOW = int(DATASET_NOW.timestamp())
DAY = 86_400
HOUR = 3_600
# The reference tables (occasion types, areas) were set up before the lead history starts.
REFERENCE_SETUP = START - 400 * DAY
# Day strings are precomputed for this range; every generated timestamp falls inside it.
_DAY0 = date(2019, 1, 1)
_NDAYS = (date(2029, 1, 1) - _DAY0).days
EPOCH0 = int(datetime(2019, 1, 1, tzinfo=UTC).timestamp())

MAX_SCALE = 50_000.0  # keeps generated ids far below EDGE_ID_BASE
MIN_VENUES = 6
MIN_LEADS = 12


@cache
def time_tables() -> tuple[list[str], list[str]]:
    """Return precomputed 'YYYY-MM-DD ' day prefixes (from EPOCH0) and 'HH:MM:SS' times."""
    days = [(_DAY0 + timedelta(days=i)).isoformat() + " " for i in range(_NDAYS)]
    tods = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(DAY)]
    return days, tods


def fmt_ts(t: int) -> str:
    """Format epoch seconds (UTC) as MariaDB TIMESTAMP text."""
    days, tods = time_tables()
    q = t - EPOCH0
    return days[q // DAY] + tods[q % DAY]


def fmt_date(t: int) -> str:
    """Format epoch seconds (UTC) as MariaDB DATE text."""
    return time_tables()[0][(t - EPOCH0) // DAY][:10]


def fmt_money(cents: int) -> str:
    """Format integer cents as DECIMAL(10,2) text."""
    if cents < 0:
        cents = -cents
        return f"-{cents // 100}.{cents % 100:02d}"
    return f"{cents // 100}.{cents % 100:02d}"


def slug(text: str) -> str:
    """ASCII lower-case letters and digits only: for e-mail local parts and domains."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in ascii_text.lower() if ch.isalnum())


def weighted_table(weights: Iterable[int]) -> list[int]:
    """Expand integer weights into an index table: table[int(random() * len)] is a draw."""
    table: list[int] = []
    for i, w in enumerate(weights):
        table.extend([i] * w)
    return table


def phone_number(rnd: Draw) -> str:
    """Draw an Australian mobile number, written in one of the three styles people use."""
    n = int(rnd() * 100_000_000)
    style = rnd()
    if style < 0.6:
        return f"04{n // 1_000_000:02d} {n // 1000 % 1000:03d} {n % 1000:03d}"
    if style < 0.85:
        return f"04{n:08d}"
    return f"+61 4{n // 1_000_000:02d} {n // 1000 % 1000:03d} {n % 1000:03d}"


class ChunkBuffer:
    """The rows generated since the last chunk went out; every table writes here."""

    def __init__(self) -> None:
        self.rows: Chunk = {t: [] for t in TABLES}

    def count(self, tables: Iterable[str]) -> int:
        """Rows buffered in these tables."""
        return sum(len(self.rows[t]) for t in tables)

    def take(self) -> Chunk:
        """Hand out the buffered chunk and start an empty one."""
        chunk, self.rows = self.rows, {t: [] for t in TABLES}
        return chunk
