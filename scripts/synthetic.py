"""Deterministic synthetic Partyhelp source data: a pure generator and a MariaDB bulk loader.

Run::

    python -m scripts.synthetic --host 127.0.0.1 --port 3306 --user root --password '' \\
        --database NAME --scale 1 --seed 42 [--create-schema] [--edge-cases]

The data imitates the Partyhelp Laravel database described in SOURCE_SCHEMA.md: Melbourne
(plus a little Sydney and Brisbane) suburbs with their real postcodes, 15 areas, 20 occasion
types, venues with credit accounts, leads with prices from a pricing matrix that are
discounted as they age, matches, purchases and a per-venue credit ledger.

Scale
-----
``scale`` multiplies the two driving counts; the other tables follow from the simulation::

    venues = max(6,  round(40 * scale))      rooms               ~2.3 per venue
    leads  = max(12, round(800 * scale))     lead_matches        ~7.0 per lead
    occasion_types = 20, areas = 15          lead_purchases      ~2.2 per lead
      (fixed, whatever the scale)            credit_transactions ~1.23 per purchase

scale 1 is today's production size divided by 100: 40 venues, 800 leads, ~5,800 matches,
~1,650 purchases, ~1,950 credit transactions (~10,400 rows). scale 0.01 gives 6 venues,
12 leads and 6 to ~60 rows in every table; scale 100 is today's size (~1.03M rows); scale
1000 is 100x today (40,000 venues, 800,000 leads, 5.6M matches, 1.7M purchases, 2.1M
credit transactions: 10.4M rows). Exact counts for a (scale, seed): :func:`count_rows`.
Scale must be in (0, 50,000]. Memory stays flat as the scale grows: rows come out in
chunks of ``chunk_rows`` from a time-ordered event simulation whose queue only holds the
next few weeks of events; only per-venue state (a few hundred bytes each) is kept.

Loading
-------
:func:`load` writes each chunk to a temporary TSV file and a loader thread runs
``LOAD DATA LOCAL INFILE`` on it while the next chunk is generated (PyMySQL with
``local_infile=True``; the server's ``local_infile`` is switched on with ``SET GLOBAL``
if it is off and we may, else multi-row INSERTs are used). The plain secondary indexes
of the empty tables are dropped during the load and rebuilt at the end (also on
failure). Measured on the 2-core dev machine, MariaDB 10.11 with a 128 MB buffer pool,
while other services shared the CPU: scale 100 in 11-18 s; scale 1000 in about 250 s
(200 s loading + 50 s index rebuild), peak RSS ~210 MB.

Time
----
Leads are created between 2022-07-01 and 2026-11-01 00:00:00 UTC (``DATASET_NOW``, the
fixed "now" of every dataset, so output never depends on the wall clock), with seasonality
(spring peak, January low) and growth. Ids increase with ``created_at`` in every table
except ``venues`` and ``rooms`` (ids follow venue creation). All timestamps are UTC.

Invariants of the normal rows (ids below ``EDGE_ID_BASE``)
-----------------------------------------------------------
* per venue, credit transactions in id order (equally, ``created_at`` order) satisfy
  ``balance_after = previous balance_after + amount`` starting from 0, and
  ``venues.credit_balance`` is the last ``balance_after`` (0.00 without transactions);
  balances go negative now and then (a venue without auto top-up that buys anyway);
* every purchase has exactly one ``type='purchase'`` transaction with
  ``lead_purchase_id`` = its id and ``amount = -amount_paid`` (refunds also carry the
  ``lead_purchase_id`` of the purchase they refund; top-ups and adjustments carry none);
* ``amount_paid`` is the lead's price at purchase time: ``base_price * (100 - d) / 100``
  with ``d`` 0 / 10 / 20 / 30 % after 0 / 48 / 96 / 168 hours since distribution;
  ``leads.current_price`` and ``discount_percent`` are the values at the lead's close (or
  now), ``purchase_count`` is the number of its purchases (never above ``purchase_target``);
* ``lead_matches`` with ``status='purchased'`` are exactly the (lead, venue) pairs of
  purchases, with ``purchased_at`` = the purchase's ``created_at``;
* about 1.5 % of leads use occasion keys absent from ``occasion_types`` (``bucks_night``,
  ``high_tea``); ``school_reunion`` exists but is inactive; ~2 % of venues have no area;
  ``suburb_preferences`` is NULL before 2023-03-01 and ``location_selections`` before
  2023-09-01 (the features did not exist yet); the suburb "Newtown" exists in two states.

Edge cases (``edge_cases=True`` / ``--edge-cases``)
---------------------------------------------------
A fixed set of legacy rows, identical for every scale and seed, with ids
``EDGE_ID_BASE + n`` (``EDGE_ID_BASE`` = 900,000,000, far above any generated id so they
never collide, even at scale 1000+). Ids ``E+96``..``E+99`` are never created: they are
the targets of orphan references. They are loaded with ``sql_mode=''`` and
``check_constraint_checks=0``.

================  =====  ===============================================================
table             id     what it is
================  =====  ===============================================================
occasion_types    E+1    zero dates in created_at/updated_at; inactive; label with
                         accents, quotes, emoji; sort_order -1
occasion_types    E+2    NULL created_at/updated_at; sort_order 2147483647
areas             E+1    zero dates in created_at/updated_at
areas             E+2    NULL timestamps; name with tab, newline, quotes, backslash, the
                         literal text ``\\N``, emoji, umlaut
venues            E+1    zero dates in all 4 timestamps; status 'archived' (unknown);
                         credit_balance 99999999.99 (max); area_id E+99 (no such area)
venues            E+2    NULL in every nullable column; credit_balance -99999999.99 (min)
venues            E+3    tabs/newlines/CR/quotes/backslash/emoji in name, contact and
                         address; balance -123.45, consistent with transactions E+1..E+3
venues            E+4    referenced by nothing (no rooms, matches, purchases, credits)
rooms             E+1    zero dates; venue E+1
rooms             E+2    NULL style, capacity, timestamps; venue E+1
rooms             E+3    orphan: venue E+98 (missing); style 'speakeasy_legacy' (not in
                         config); capacity 0; name with tab, backslash, emoji
leads             E+1    zero dates in preferred_date ('0000-00-00') and all 5 *_at;
                         occasion 'murder_mystery_night' (no occasion_types row); status
                         'on_hold' (unknown); JSON '[]' and '{}'
leads             E+2    NULL in every nullable column (names, email, phone, guest
                         counts, date, suburb, both JSON, prices, all *_at)
leads             E+3    preferred_date '2024-05-00' (partial zero); accents, emoji,
                         quotes, tab, newline, backslash in names; nested JSON arrays and
                         objects with nulls and a \\u escape
leads             E+4    preferred_date '2024-00-00'; JSON ``null`` (not SQL NULL) in
                         both; occasion 'Hens Night' (a label stored as key, absent)
leads             E+5    malformed JSON in both columns (truncated array; unquoted keys)
leads             E+6    referenced by nothing; base_price 99999999.99, current_price
                         -99999999.99, discount 255, target 0, count 255, guest_count
                         4294967295, guest_count_display ''; malformed JSON ('' and text);
                         preferred_date 9999-12-31; TIMESTAMP extremes 1970-01-01 00:00:01
                         and 2038-01-19 03:14:07
lead_matches      E+1    zero dates in all 5 timestamps; status 'superseded' (unknown);
                         match_score 999.99 (max); lead E+1, venue E+1
lead_matches      E+2    orphan both ways: lead E+97, venue E+98 (missing); NULL in every
                         nullable column
lead_matches      E+3    lead E+3, venue E+98 (missing); match_score -999.99 (min)
lead_matches      E+4    lead E+97 (missing), venue E+3
lead_purchases    E+1    zero dates; lead_status 'refunded' (unknown); amount_paid
                         99999999.99 (max); lead E+1, venue E+1; NO credit transaction
lead_purchases    E+2    lead E+97 (missing), venue E+3, 173.45; NULL timestamps;
                         its purchase transaction is E+2
lead_purchases    E+3    venue E+98 (missing), lead E+3; amount_paid -99999999.99 (min);
                         NO credit transaction
lead_purchases    E+4    lead E+3, venue E+3; amount_paid 0.00, discount 100;
                         its purchase transaction is E+3
credit_trans.     E+1    venue E+3 topup 50.00 -> 50.00; description and admin_note with
                         tab, CR/LF, quotes, emoji, a trailing backslash, literal ``\\N``
credit_trans.     E+2    venue E+3 purchase -173.45 -> -123.45 (negative), purchase E+2
credit_trans.     E+3    venue E+3 purchase 0.00 -> -123.45, purchase E+4
credit_trans.     E+4    venue E+1 type 'chargeback' (unknown) 99999999.99 -> 99999999.99
                         (max); zero dates; description of exactly 61,440 bytes (60 KB)
credit_trans.     E+5    venue E+2 adjustment -99999999.99 -> -99999999.99 (min); NULL
                         in every nullable column
credit_trans.     E+6    orphan both ways: venue E+98 (missing), purchase -25.00 -> -25.00
                         pointing at lead_purchase E+96 (missing)
================  =====  ===============================================================

The balance invariants above also hold for the edge venues and the missing venue E+98;
the purchase/transaction pairing does not hold for edge purchases E+1 and E+3.

Rows
----
A row is a tuple of ``str | None`` in :data:`COLUMNS` order: each value is the text MariaDB
returns for the stored value (``'12.50'``, ``'2024-01-02 03:04:05'``, JSON as stored), so
``CRC32(CONCAT_WS('|', ...))`` computed in SQL (:func:`checksum_sql`) equals
:func:`row_checksum` computed in Python. :func:`to_python` converts a row to typed values.
Money is exact throughout: integer cents internally, ``Decimal`` at the typed boundary.
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import math
import os
import queue
import random
import sys
import tempfile
import threading
import time
import unicodedata
import zlib
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pymysql

Row = tuple[str | None, ...]

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "partyhelp_schema.sql"

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
_KINDS: dict[str, dict[str, str]] = {
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

COLUMNS: dict[str, tuple[str, ...]] = {t: tuple(k) for t, k in _KINDS.items()}

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
_START = int(DATASET_START.timestamp())
_NOW = int(DATASET_NOW.timestamp())
_DAY = 86_400
_HOUR = 3_600
# Day strings are precomputed for this range; every generated timestamp falls inside it.
_DAY0 = date(2019, 1, 1)
_NDAYS = (date(2029, 1, 1) - _DAY0).days
_EPOCH0 = int(datetime(2019, 1, 1, tzinfo=UTC).timestamp())

MAX_SCALE = 50_000.0  # keeps generated ids far below EDGE_ID_BASE
MIN_VENUES = 6
MIN_LEADS = 12

# --------------------------------------------------------------------------------------
# Reference data
# --------------------------------------------------------------------------------------

# (area name, relative weight of leads and venues, [(suburb, state, postcode), ...])
AREAS: tuple[tuple[str, int, tuple[tuple[str, str, str], ...]], ...] = (
    ("CBD", 14, (("Melbourne", "VIC", "3000"), ("Southbank", "VIC", "3006"),
                 ("Docklands", "VIC", "3008"), ("East Melbourne", "VIC", "3002"),
                 ("West Melbourne", "VIC", "3003"))),
    ("Inner North", 14, (("Fitzroy", "VIC", "3065"), ("Collingwood", "VIC", "3066"),
                         ("Carlton", "VIC", "3053"), ("Brunswick", "VIC", "3056"),
                         ("Northcote", "VIC", "3070"), ("Fitzroy North", "VIC", "3068"),
                         ("Abbotsford", "VIC", "3067"), ("Thornbury", "VIC", "3071"),
                         ("Brunswick East", "VIC", "3057"), ("Carlton North", "VIC", "3054"))),
    ("Inner South", 12, (("South Yarra", "VIC", "3141"), ("Prahran", "VIC", "3181"),
                         ("Windsor", "VIC", "3181"), ("St Kilda", "VIC", "3182"),
                         ("South Melbourne", "VIC", "3205"), ("Port Melbourne", "VIC", "3207"),
                         ("Albert Park", "VIC", "3206"), ("Elwood", "VIC", "3184"))),
    ("Inner East", 9, (("Richmond", "VIC", "3121"), ("Hawthorn", "VIC", "3122"),
                       ("Kew", "VIC", "3101"), ("Camberwell", "VIC", "3124"),
                       ("Cremorne", "VIC", "3121"))),
    ("Northern Suburbs", 6, (("Coburg", "VIC", "3058"), ("Preston", "VIC", "3072"),
                             ("Reservoir", "VIC", "3073"), ("Essendon", "VIC", "3040"),
                             ("Moonee Ponds", "VIC", "3039"), ("Pascoe Vale", "VIC", "3044"),
                             ("Bundoora", "VIC", "3083"))),
    ("Western Suburbs", 6, (("Footscray", "VIC", "3011"), ("Yarraville", "VIC", "3013"),
                            ("Williamstown", "VIC", "3016"), ("Seddon", "VIC", "3011"),
                            ("Sunshine", "VIC", "3020"), ("Werribee", "VIC", "3030"),
                            ("Kensington", "VIC", "3031"))),
    ("Eastern Suburbs", 6, (("Box Hill", "VIC", "3128"), ("Doncaster", "VIC", "3108"),
                            ("Ringwood", "VIC", "3134"), ("Glen Waverley", "VIC", "3150"),
                            ("Blackburn", "VIC", "3130"), ("Balwyn", "VIC", "3103"))),
    ("South East", 6, (("Caulfield", "VIC", "3162"), ("Malvern", "VIC", "3144"),
                       ("Oakleigh", "VIC", "3166"), ("Dandenong", "VIC", "3175"),
                       ("Clayton", "VIC", "3168"), ("Chadstone", "VIC", "3148"),
                       ("Bentleigh", "VIC", "3204"))),
    ("Bayside", 7, (("Brighton", "VIC", "3186"), ("Sandringham", "VIC", "3191"),
                    ("Hampton", "VIC", "3188"), ("Black Rock", "VIC", "3193"),
                    ("Mentone", "VIC", "3194"), ("Mordialloc", "VIC", "3195"),
                    ("Beaumaris", "VIC", "3193"))),
    ("Mornington Peninsula", 5, (("Mornington", "VIC", "3931"), ("Frankston", "VIC", "3199"),
                                 ("Sorrento", "VIC", "3943"), ("Rosebud", "VIC", "3939"),
                                 ("Red Hill", "VIC", "3937"), ("Portsea", "VIC", "3944"),
                                 ("Mount Martha", "VIC", "3934"))),
    ("Yarra Valley", 4, (("Healesville", "VIC", "3777"), ("Yarra Glen", "VIC", "3775"),
                         ("Lilydale", "VIC", "3140"), ("Coldstream", "VIC", "3770"))),
    ("Dandenong Ranges", 2, (("Olinda", "VIC", "3788"), ("Belgrave", "VIC", "3160"),
                             ("Sassafras", "VIC", "3787"), ("Emerald", "VIC", "3782"))),
    ("Geelong & Bellarine", 4, (("Geelong", "VIC", "3220"), ("Torquay", "VIC", "3228"),
                                ("Queenscliff", "VIC", "3225"), ("Ocean Grove", "VIC", "3226"),
                                ("Newtown", "VIC", "3220"))),
    ("Sydney", 3, (("Surry Hills", "NSW", "2010"), ("Newtown", "NSW", "2042"),
                   ("Paddington", "NSW", "2021"), ("Bondi", "NSW", "2026"),
                   ("Sydney", "NSW", "2000"), ("Manly", "NSW", "2095"))),
    ("Brisbane", 2, (("Fortitude Valley", "QLD", "4006"), ("South Brisbane", "QLD", "4101"),
                     ("West End", "QLD", "4101"), ("Brisbane City", "QLD", "4000"),
                     ("New Farm", "QLD", "4005"))),
)  # fmt: skip

# (key, label, is_active, weight in 1/1000, tier). Tier picks the guest bands and prices.
OCCASIONS: tuple[tuple[str, str, int, int, str], ...] = (
    ("21st_birthday", "21st Birthday", 1, 140, "social"),
    ("18th_birthday", "18th Birthday", 1, 70, "social"),
    ("30th_birthday", "30th Birthday", 1, 90, "social"),
    ("40th_birthday", "40th Birthday", 1, 65, "social"),
    ("50th_birthday", "50th Birthday", 1, 55, "social"),
    ("60th_birthday", "60th Birthday", 1, 25, "social"),
    ("birthday_party", "Birthday Party", 1, 60, "social"),
    ("engagement_party", "Engagement Party", 1, 85, "premium"),
    ("wedding_reception", "Wedding Reception", 1, 70, "premium"),
    ("christmas_party", "Christmas Party", 1, 75, "corporate"),
    ("corporate_function", "Corporate Function", 1, 75, "corporate"),
    ("farewell", "Farewell", 1, 35, "social"),
    ("baby_shower", "Baby Shower", 1, 25, "social"),
    ("hens_party", "Hens Party", 1, 20, "social"),
    ("cocktail_party", "Cocktail Party", 1, 25, "social"),
    ("product_launch", "Product Launch", 1, 15, "corporate"),
    ("graduation", "Graduation Party", 1, 15, "social"),
    ("anniversary", "Anniversary", 1, 15, "premium"),
    ("wake", "Wake / Memorial", 1, 10, "social"),
    ("school_reunion", "School Reunion", 0, 5, "social"),
)
# Keys the app still accepts from old forms but that have no occasion_types row.
ABSENT_OCCASIONS: tuple[tuple[str, int, str], ...] = (
    ("bucks_night", 10, "social"),
    ("high_tea", 5, "social"),
)

# (display, low, high); the form's guest-count ranges.
GUEST_BANDS: tuple[tuple[str, int, int], ...] = (
    ("10-20", 10, 20), ("20-30", 20, 30), ("30-50", 30, 50), ("50-80", 50, 80),
    ("80-100", 80, 100), ("100-150", 100, 150), ("150-200", 150, 200), ("200-300", 200, 300),
    ("300+", 300, 500),
)  # fmt: skip
_BAND_WEIGHTS: dict[str, tuple[int, ...]] = {
    "social": (8, 16, 22, 22, 12, 11, 5, 3, 1),
    "premium": (1, 3, 8, 16, 17, 22, 17, 11, 5),
    "corporate": (2, 6, 14, 20, 16, 18, 12, 8, 4),
}
# Pricing matrix in whole dollars: tier x guest group (<=30, <=80, <=150, >150).
PRICE_MATRIX: dict[str, tuple[int, int, int, int]] = {
    "social": (12, 18, 25, 35),
    "premium": (20, 30, 40, 55),
    "corporate": (18, 25, 35, 45),
}
_BAND_GROUP = (0, 0, 0, 1, 2, 2, 3, 3, 3)
# (hours since distribution, discount %) steps of the lead price.
DISCOUNT_STEPS: tuple[tuple[int, int], ...] = ((0, 0), (48, 10), (96, 20), (168, 30))
LEAD_LIFETIME = 14 * _DAY

FIRST_NAMES = (
    "Olivia", "Charlotte", "Amelia", "Isla", "Mia", "Ava", "Grace", "Chloe", "Sophie", "Emily",
    "Ella", "Ruby", "Zoë", "Jack", "Oliver", "William", "Noah", "Thomas", "James", "Lachlan",
    "Liam", "Ethan", "Lucas", "Harrison", "Cooper", "Mitchell", "Priya", "Aarav", "Wei",
    "Mei", "Minh", "Linh", "Sarah", "Jessica", "Hannah", "Georgia", "Matilda", "Renée",
    "José", "Chloé", "Siobhan", "Nikolaos", "Eleni", "Giulia", "Marco", "Fatima", "Omar",
    "Ngaio", "Tane", "Kai",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Jones", "Williams", "Brown", "Wilson", "Taylor", "Johnson", "White", "Martin",
    "Anderson", "Thompson", "Nguyen", "Tran", "Le", "Chen", "Wang", "Li", "Zhang", "Singh",
    "Patel", "Kumar", "O'Brien", "O'Connor", "Kelly", "Murphy", "Ryan", "Walsh", "Papadopoulos",
    "Georgiou", "Rossi", "Russo", "Ferrari", "Müller", "Nguyễn", "Ahmed", "Hassan", "Kaur",
    "MacDonald", "McKenzie", "Campbell", "Stewart", "Robinson", "Clarke", "Hall", "Young",
    "King", "Wright", "Scott", "Green", "Baker",
)  # fmt: skip
EMAIL_DOMAINS = (
    "gmail.com", "gmail.com", "gmail.com", "hotmail.com", "outlook.com", "yahoo.com.au",
    "bigpond.com", "icloud.com", "live.com.au", "optusnet.com.au",
)  # fmt: skip
STREETS = (
    "Smith Street", "Brunswick Street", "Chapel Street", "Lygon Street", "Collins Street",
    "Flinders Lane", "Sydney Road", "High Street", "Swan Street", "Acland Street",
    "Glenferrie Road", "Bridge Road", "Johnston Street", "Gertrude Street", "Fitzroy Street",
    "Toorak Road", "Burke Road", "Church Street", "Victoria Street", "Nicholson Street",
    "Bay Street", "Main Street", "Station Street", "Beach Road", "Point Nepean Road",
)  # fmt: skip
VENUE_WORDS_A = (
    "The", "Little", "Old", "Grand", "Royal", "Lucky", "Golden", "Velvet", "Copper", "Hidden",
    "Laneway", "Rooftop", "Garden", "Harbour", "Southern", "Crown", "Union", "Electric",
)  # fmt: skip
VENUE_WORDS_B = (
    "Fox", "Duke", "Oak", "Lantern", "Anchor", "Pearl", "Sparrow", "Library", "Terrace",
    "Cellar", "Lounge", "Social", "Exchange", "Mill", "Boathouse", "Conservatory", "Vault",
    "Alchemist", "Botanist", "Parlour",
)  # fmt: skip
VENUE_KINDS = (
    "Hotel", "Bar", "Rooftop Bar", "Events", "Function Centre", "Dining Room", "Wine Bar",
    "Brewery", "Pub", "Café", "Ballroom", "Estate", "Kitchen & Bar", "Distillery",
)  # fmt: skip
ROOM_NAMES = (
    "Main Bar", "Rooftop Terrace", "Function Room", "Private Dining Room", "Courtyard",
    "The Loft", "Garden Room", "Cellar", "Ballroom", "Mezzanine", "Beer Garden", "Library",
    "Lounge", "Whole Venue", "Boardroom", "Balcony",
)  # fmt: skip
# Keys of the app's room_styles config (not stored in the database).
ROOM_STYLES = (
    "cocktail", "sit_down", "banquet", "theatre", "boardroom", "outdoor", "lounge",
    "standing", "long_table",
)  # fmt: skip
_STRIPE_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_REFUND_NOTES = (
    "Customer cancelled the event.",
    "Duplicate enquiry.\nSame customer submitted twice.",
    "Contact details invalid (phone disconnected).",
    "Approved by ops\r\nVenue could not reach the customer.",
    "Goodwill refund \u2013 event date already booked.",
)
_ADJUST_NOTES = (
    "Goodwill credit \u2013 venue double-charged",
    "Migration correction",
    "Promo credit: first month free leads",
    "Manual correction after Stripe dispute",
)

# --------------------------------------------------------------------------------------
# Formatting helpers (hot paths: keep them tiny)
# --------------------------------------------------------------------------------------


@cache
def _time_tables() -> tuple[list[str], list[str]]:
    """Return precomputed 'YYYY-MM-DD ' day prefixes and 'HH:MM:SS' times of day."""
    days = [(_DAY0 + timedelta(days=i)).isoformat() + " " for i in range(_NDAYS)]
    tods = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(_DAY)]
    return days, tods


def fmt_ts(t: int) -> str:
    """Format epoch seconds (UTC) as MariaDB TIMESTAMP text."""
    days, tods = _time_tables()
    q = t - _EPOCH0
    return days[q // _DAY] + tods[q % _DAY]


def fmt_money(cents: int) -> str:
    """Format integer cents as DECIMAL(10,2) text."""
    if cents < 0:
        cents = -cents
        return f"-{cents // 100}.{cents % 100:02d}"
    return f"{cents // 100}.{cents % 100:02d}"


def _slug(text: str) -> str:
    """ASCII lower-case letters and digits only: for e-mail local parts and domains."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in ascii_text.lower() if ch.isalnum())


def _weighted_table(weights: list[int] | tuple[int, ...]) -> list[int]:
    """Expand integer weights into an index table: table[int(random() * len)] is a draw."""
    table: list[int] = []
    for i, w in enumerate(weights):
        table.extend([i] * w)
    return table


def planned_sizes(scale: float) -> dict[str, int]:
    """Return the exact counts fixed by the scale (the other tables follow the simulation)."""
    if not (0 < scale <= MAX_SCALE):
        raise ValueError(f"scale must be in (0, {MAX_SCALE:g}], got {scale!r}")
    return {
        "occasion_types": len(OCCASIONS),
        "areas": len(AREAS),
        "venues": max(MIN_VENUES, round(40 * scale)),
        "leads": max(MIN_LEADS, round(800 * scale)),
    }


def _lead_time_mapper() -> Callable[[float], int]:
    """Map u in [0, 1) to a lead creation time with seasonality and growth (monotone)."""
    bounds: list[int] = []
    y, m = DATASET_START.year, DATASET_START.month
    while True:
        t = int(datetime(y, m, 1, tzinfo=UTC).timestamp())
        bounds.append(min(t, _NOW))
        if t >= _NOW:
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


# --------------------------------------------------------------------------------------
# The simulation
# --------------------------------------------------------------------------------------

_EV_APPROVE, _EV_DISTRIBUTE, _EV_PURCHASE, _EV_REFUND, _EV_ADJUST = range(5)


def _reference_rows() -> tuple[list[Row], list[Row]]:
    """Rows of occasion_types and areas (identical for every scale and seed)."""
    setup = _START - 400 * _DAY
    occ_rows: list[Row] = []
    for i, (key, label, active, _w, _tier) in enumerate(OCCASIONS):
        created = setup + i * 97
        # Labels were edited once in a while after the launch.
        updated = created + (200 + i * 13) * _DAY if i % 3 == 0 else created
        occ_rows.append(
            (str(i + 1), key, label, str(active), str((i + 1) * 10), fmt_ts(created),
             fmt_ts(updated))
        )  # fmt: skip
    area_rows: list[Row] = [
        (str(i + 1), name, fmt_ts(setup + i * 61), fmt_ts(setup + i * 61))
        for i, (name, _w, _subs) in enumerate(AREAS)
    ]
    return occ_rows, area_rows


def generate(
    scale: float, seed: int, edge_cases: bool = False, chunk_rows: int = 50_000
) -> Iterator[dict[str, list[Row]]]:
    """Yield the dataset as chunks {table: rows}; about chunk_rows rows per chunk."""
    sizes = planned_sizes(scale)
    rng = random.Random(seed)
    rnd = rng.random
    ts = fmt_ts
    money = fmt_money
    days = _time_tables()[0]
    now = _NOW

    buffers: dict[str, list[Row]] = {t: [] for t in TABLES}
    occ_rows, area_rows = _reference_rows()
    buffers["occasion_types"].extend(occ_rows)
    buffers["areas"].extend(area_rows)

    # ---- suburbs, JSON fragments and weighted tables, prepared once
    area_tbl = _weighted_table([w for _n, w, _s in AREAS])
    n_area_tbl = len(area_tbl)
    area_suburbs = [subs for _n, _w, subs in AREAS]
    sub_json = [[f'"{s}"' for s, _st, _pc in subs] for subs in area_suburbs]
    loc_json = [
        [f'{{"area_id": {a + 1}, "suburb": "{s}"}}' for s, _st, _pc in subs]
        for a, subs in enumerate(area_suburbs)
    ]
    occ_all = [(k, tier) for k, _l, _a, _w, tier in OCCASIONS] + [
        (k, tier) for k, _w, tier in ABSENT_OCCASIONS
    ]
    occ_tbl = _weighted_table(
        [w for *_x, w, _t in OCCASIONS] + [w for _k, w, _t in ABSENT_OCCASIONS]
    )
    n_occ_tbl = len(occ_tbl)
    band_tbl = {tier: _weighted_table(w) for tier, w in _BAND_WEIGHTS.items()}
    band_strs = [(d, lo, hi - lo + 1) for d, lo, hi in GUEST_BANDS]
    base_cents = {
        tier: [PRICE_MATRIX[tier][_BAND_GROUP[b]] * 100 for b in range(len(GUEST_BANDS))]
        for tier in PRICE_MATRIX
    }
    first_names = FIRST_NAMES
    last_names = LAST_NAMES
    first_slugs = [_slug(n) for n in FIRST_NAMES]
    last_slugs = [_slug(n) for n in LAST_NAMES]
    n_first, n_last, n_dom = len(FIRST_NAMES), len(LAST_NAMES), len(EMAIL_DOMAINS)
    target_tbl = (3,) * 15 + (4,) * 2 + (5,) * 2 + (2,)
    k_tbl = (4, 5, 6, 6, 7, 7, 8, 8, 8, 9, 9, 10, 10, 11, 12)
    step_hours = [h for h, _d in DISCOUNT_STEPS]
    step_pct = [d for _h, d in DISCOUNT_STEPS]
    step_pct_s = [str(d) for d in step_pct]
    feature_prefs = int(datetime(2023, 3, 1, tzinfo=UTC).timestamp())
    feature_locs = int(datetime(2023, 9, 1, tzinfo=UTC).timestamp())
    feature_score = int(datetime(2023, 1, 1, tzinfo=UTC).timestamp())

    def stripe_id() -> str:
        return "pi_3" + "".join(rng.choices(_STRIPE_ALPHABET, k=23))

    def phone_number() -> str:
        n = int(rnd() * 100_000_000)
        style = rnd()
        if style < 0.6:
            return f"04{n // 1_000_000:02d} {n // 1000 % 1000:03d} {n % 1000:03d}"
        if style < 0.85:
            return f"04{n:08d}"
        return f"+61 4{n // 1_000_000:02d} {n // 1000 % 1000:03d} {n % 1000:03d}"

    # ---- venues: static attributes, rows for rooms now, venue rows at the end
    n_venues = sizes["venues"]
    created_list = []
    for _ in range(n_venues):
        if rnd() < 0.45:  # onboarded before the lead history starts
            created_list.append(_START - int(rnd() * 3 * 365 * _DAY))
        else:
            created_list.append(_START + int(rnd() * (now - _START - 7 * _DAY)))
    created_list.sort()  # ids follow creation time, as AUTO_INCREMENT would
    v_created: list[int] = []
    v_approved: list[int | None] = []
    v_until: list[int] = []
    v_status: list[str] = []
    v_area: list[int | None] = []
    v_auto: list[bool] = []
    v_topup: list[int] = []
    v_appetite: list[float] = []
    v_text: list[tuple[str, str, str, str, str, str, str, str]] = []
    status_tbl = ("active",) * 78 + ("inactive",) * 14 + ("suspended",) * 5 + ("pending",) * 3
    topups = (5_000, 10_000, 10_000, 15_000, 20_000, 25_000, 50_000)
    for created in created_list:
        status = status_tbl[int(rnd() * 100)]
        if created > now - 45 * _DAY and rnd() < 0.6:
            status = "pending"  # recently signed up, not reviewed yet
        approved = None if status == "pending" else created + _HOUR + int(rnd() * 7 * _DAY)
        if approved is not None and approved >= now:
            approved, status = None, "pending"
        if status in ("inactive", "suspended") and approved is not None:
            until = approved + int(rnd() * (now - approved))
        else:
            until = now + 1
        area = area_tbl[int(rnd() * n_area_tbl)]
        subs = area_suburbs[area]
        suburb, state, postcode = subs[int(rnd() * len(subs))]
        kind = VENUE_KINDS[int(rnd() * len(VENUE_KINDS))]
        pick = rnd()
        if pick < 0.4:
            name = (
                f"{VENUE_WORDS_A[int(rnd() * len(VENUE_WORDS_A))]} "
                f"{VENUE_WORDS_B[int(rnd() * len(VENUE_WORDS_B))]} {kind}"
            )
        elif pick < 0.7:
            name = f"The {suburb} {VENUE_WORDS_B[int(rnd() * len(VENUE_WORDS_B))]}"
        elif pick < 0.9:
            name = f"{LAST_NAMES[int(rnd() * n_last)]}'s {kind}"
        else:
            name = f"{VENUE_WORDS_B[int(rnd() * len(VENUE_WORDS_B))]} & Co. {suburb}"
        fi, li = int(rnd() * n_first), int(rnd() * n_last)
        contact = f"{first_names[fi]} {last_names[li]}"
        domain = _slug(name)[:24] or "venue"
        if rnd() < 0.7:
            email = f"{first_slugs[fi]}@{domain}.com.au"
        else:
            email = f"{domain}.events@{EMAIL_DOMAINS[int(rnd() * n_dom)]}"
        if rnd() < 0.5:
            phone = phone_number()
        else:
            phone = f"(03) 9{int(rnd() * 1000):03d} {int(rnd() * 10000):04d}"
        address = f"{1 + int(rnd() * 480)} {STREETS[int(rnd() * len(STREETS))]}"
        v_created.append(created)
        v_approved.append(approved)
        v_until.append(until)
        v_status.append(status)
        v_area.append(None if rnd() < 0.02 else area)  # legacy venues without an area
        v_auto.append(rnd() < 0.55)
        v_topup.append(topups[int(rnd() * len(topups))])
        v_appetite.append(0.12 + 0.6 * rnd() ** 1.5)
        v_text.append((name, contact, email, phone, address, suburb, state, postcode))

    rooms = buffers["rooms"]
    room_id = 0
    room_counts = (1, 1, 2, 2, 2, 3, 3, 4)
    for vi in range(n_venues):
        k = room_counts[int(rnd() * len(room_counts))]
        for name in rng.sample(ROOM_NAMES, k):
            room_id += 1
            created = v_created[vi] + int(rnd() * 20 * _DAY)
            updated = min(now, created + int(rnd() * 400 * _DAY))
            style = None if rnd() < 0.08 else ROOM_STYLES[int(rnd() * len(ROOM_STYLES))]
            cap = None if rnd() < 0.05 else str(10 * (2 + int(rnd() * 40)))
            rooms.append((str(room_id), str(vi + 1), name, style, cap, ts(created), ts(updated)))
        if len(rooms) >= chunk_rows:  # rooms grow with venues: chunk them as well
            yield buffers
            buffers = {t: [] for t in TABLES}
            rooms = buffers["rooms"]

    # ---- mutable simulation state
    balance = [0] * n_venues
    last_tx = [0] * n_venues
    eligible: list[int] = []
    area_pool: list[list[int]] = [[] for _ in AREAS]
    heap: list[tuple[int, int, int, Any]] = []
    seq = 0
    for vi in range(n_venues):
        approved = v_approved[vi]
        if approved is not None:
            seq += 1
            heap.append((approved, seq, _EV_APPROVE, vi))
    heapq.heapify(heap)
    push = heapq.heappush
    pop = heapq.heappop

    leads_out = buffers["leads"]
    matches_out = buffers["lead_matches"]
    purchases_out = buffers["lead_purchases"]
    tx_out = buffers["credit_transactions"]
    match_id = purchase_id = tx_id = 0

    def credit(
        vi: int,
        t: int,
        kind: str,
        cents: int,
        lp: str | None,
        stripe: str | None,
        desc: str | None,
        note: str | None,
    ) -> None:
        nonlocal tx_id
        tx_id += 1
        balance[vi] += cents
        last_tx[vi] = t
        s = ts(t)
        tx_out.append(
            (str(tx_id), str(vi + 1), kind, money(cents), money(balance[vi]), lp, stripe,
             desc, note, s, s)
        )  # fmt: skip

    def run_until(limit: int) -> None:
        """Process queued events up to time limit, in time order (ids follow time)."""
        nonlocal match_id, purchase_id, seq
        while heap and heap[0][0] <= limit:
            t, _s, kind, data = pop(heap)
            if kind == _EV_DISTRIBUTE:
                for tail in data:
                    match_id += 1
                    matches_out.append((str(match_id), *tail))
            elif kind == _EV_PURCHASE:
                lead_s, vi, price, disc_s, lead_status, upd = data
                bal = balance[vi]
                if bal < price:
                    need = price - bal
                    if v_auto[vi]:
                        amt = v_topup[vi]
                        for _ in range(-(-need // amt)):
                            credit(vi, t, "auto_topup", amt, None, stripe_id(),
                                   "Auto top-up", None)  # fmt: skip
                    elif rnd() < 0.85:
                        amt = v_topup[vi]
                        credit(vi, t, "topup", amt * -(-need // amt), None, stripe_id(),
                               "Credit top-up", None)  # fmt: skip
                    # else: the venue buys on credit and its balance goes negative.
                purchase_id += 1
                pid = str(purchase_id)
                s = ts(t)
                purchases_out.append(
                    (pid, lead_s, str(vi + 1), money(price), disc_s, lead_status, s, upd)
                )
                credit(vi, t, "purchase", -price, pid, None, f"Lead #{lead_s} purchased", None)
                r = rnd()
                if r < 0.02:
                    when = t + _DAY + int(rnd() * 24 * _DAY)
                    if when <= now:
                        seq += 1
                        push(heap, (when, seq, _EV_REFUND, (vi, pid, price, lead_s)))
                elif r < 0.025:
                    when = t + _HOUR + int(rnd() * 10 * _DAY)
                    if when <= now:
                        seq += 1
                        push(heap, (when, seq, _EV_ADJUST, vi))
            elif kind == _EV_REFUND:
                vi, pid, price, lead_s = data
                note = _REFUND_NOTES[int(rnd() * len(_REFUND_NOTES))] if rnd() < 0.7 else None
                credit(vi, t, "refund", price, pid, None, f"Refund for lead #{lead_s}", note)
            elif kind == _EV_ADJUST:
                cents = 500 * (1 + int(rnd() * 10))
                if rnd() < 0.3:
                    cents = -cents
                note = _ADJUST_NOTES[int(rnd() * len(_ADJUST_NOTES))]
                credit(data, t, "adjustment", cents, None, None, "Manual adjustment", note)
            else:  # _EV_APPROVE
                vi = data
                eligible.append(vi)
                if v_area[vi] is not None:
                    area_pool[v_area[vi]].append(vi)
                if rnd() < 0.85:
                    credit(vi, t, "topup", v_topup[vi], None, stripe_id(),
                           "Initial credit purchase", None)  # fmt: skip

    def discount_index(t: int, dist: int) -> int:
        h = (t - dist) // _HOUR
        i = 0
        while i + 1 < len(step_hours) and h >= step_hours[i + 1]:
            i += 1
        return i

    lead_time = _lead_time_mapper()
    n_leads = sizes["leads"]
    sample = rng.sample
    log = math.log
    for li in range(n_leads):
        created = lead_time((li + rnd()) / n_leads)
        run_until(created)
        lead_s = str(li + 1)

        occ_key, tier = occ_all[occ_tbl[int(rnd() * n_occ_tbl)]]
        bt = band_tbl[tier]
        band = bt[int(rnd() * len(bt))]
        disp, lo, width = band_strs[band]
        guests = None if rnd() < 0.02 else str(lo + int(rnd() * width))
        if rnd() < 0.03:
            disp = None
        base = base_cents[tier][band]

        fi, ln = int(rnd() * n_first), int(rnd() * n_last)
        first = None if rnd() < 0.005 else first_names[fi]
        last = None if rnd() < 0.03 else last_names[ln]
        r = rnd()
        if r < 0.005:
            email = None
        elif r < 0.6:
            email = f"{first_slugs[fi]}.{last_slugs[ln]}@{EMAIL_DOMAINS[int(rnd() * n_dom)]}"
        else:
            email = (
                f"{first_slugs[fi]}{last_slugs[ln][:1]}{int(rnd() * 100)}"
                f"@{EMAIL_DOMAINS[int(rnd() * n_dom)]}"
            )
        phone = None if rnd() < 0.06 else phone_number()

        if occ_key == "christmas_party":
            # Christmas parties are held between late November and just before Christmas.
            year = datetime.fromtimestamp(created, UTC).year
            pd = int(datetime(year, 11, 24, tzinfo=UTC).timestamp()) + int(rnd() * 28) * _DAY
            if pd < created + 7 * _DAY:
                pd += 365 * _DAY
        else:
            pd = created + (10 + int(rnd() * 260)) * _DAY
        pref_date = None if rnd() < 0.02 else days[(pd - _EPOCH0) // _DAY][:10]

        area = area_tbl[int(rnd() * n_area_tbl)]
        subs = area_suburbs[area]
        ns = len(subs)
        si = int(rnd() * ns)
        suburb = None if rnd() < 0.01 else subs[si][0]
        picks = [si]
        for _ in range(int(rnd() * 3)):
            j = int(rnd() * ns)
            if j not in picks:
                picks.append(j)
        if created < feature_prefs:
            prefs = None
        elif rnd() < 0.01:
            prefs = "[]"
        else:
            sj = sub_json[area]
            prefs = "[" + ", ".join([sj[j] for j in picks]) + "]"
        if created < feature_locs:
            locs = None
        else:
            lj = loc_json[area]
            locs = "[" + ", ".join([lj[j] for j in picks]) + "]"
        target = target_tbl[int(rnd() * len(target_tbl))]

        # ---- lifecycle
        r = rnd()
        dist = created + 120 + int(rnd() * 2580)
        if r < 0.01 or dist > now:
            # Cancelled before distribution, or too recent to be distributed yet.
            if r < 0.01:
                status = "cancelled"
                updated = min(now, created + 600 + int(rnd() * 2 * _DAY))
            else:
                status = "new"
                updated = created
            leads_out.append(
                (lead_s, first, last, email, phone, occ_key, guests, disp, pref_date, suburb,
                 prefs, locs, status, money(base), money(base), "0", str(target), "0", None,
                 None, None, ts(created), ts(updated))
            )  # fmt: skip
            continue

        expires = dist + LEAD_LIFETIME
        cancel = dist + int(rnd() * 12 * _DAY) if rnd() < 0.03 else None
        stop = min(expires, now + 1 if cancel is None else min(cancel, now + 1))

        k = k_tbl[int(rnd() * len(k_tbl))]
        pool = area_pool[area]
        if len(pool) < 2 * k:
            pool = eligible  # small areas borrow venues from everywhere
        chosen = pool[:] if len(pool) <= k else sample(pool, k)
        chosen = [vi for vi in chosen if v_until[vi] > dist]

        buyers = []
        for vi in chosen:
            if rnd() < v_appetite[vi]:
                # Purchase delays are roughly exponential, mean ~24 h, at least 5 minutes.
                when = dist + 300 + int(-log(1.0 - rnd()) * 24 * _HOUR)
                if when < stop:
                    buyers.append((when, vi))
        buyers.sort()
        del buyers[target:]
        bought = {vi: when for when, vi in buyers}
        n_bought = len(buyers)
        fulfilled = buyers[-1][0] if n_bought == target and n_bought else None

        if fulfilled is not None:
            close, status = fulfilled, "fulfilled"
        elif cancel is not None and cancel < expires and cancel <= now:
            close, status = cancel, "cancelled"
        elif expires <= now:
            close, status = expires, "expired"
        else:
            close, status = None, ("partially_fulfilled" if n_bought else "distributed")
        di = discount_index(close if close is not None else now, dist)
        updated = max(dist, buyers[-1][0] if buyers else dist, close or dist)
        leads_out.append(
            (lead_s, first, last, email, phone, occ_key, guests, disp, pref_date, suburb, prefs,
             locs, status, money(base), money(base * (100 - step_pct[di]) // 100),
             step_pct_s[di], str(target), str(n_bought), ts(dist),
             None if fulfilled is None else ts(fulfilled), ts(expires), ts(created),
             ts(updated))
        )  # fmt: skip

        # ---- matches (emitted at distribution time) and purchases (at purchase time)
        tails = []
        horizon = now if close is None else close
        for j, vi in enumerate(chosen):
            notified = dist + j  # notifications go out one by one
            # Scores appeared with the matching engine v2 (2023); older matches have none.
            score = None if dist < feature_score else money(4000 + int(rnd() * 6000))
            when = bought.get(vi)
            if when is not None:
                viewed = max(notified + 30, when - int(rnd() * 3 * _HOUR))
                st, v_s, p_s, upd = "purchased", ts(viewed), ts(when), when
            else:
                viewed = notified + int(rnd() * 3 * _DAY)
                seen = rnd() < 0.55 and viewed < horizon
                if rnd() < 0.12 and viewed < horizon:
                    st, v_s, p_s, upd = "declined", ts(viewed), None, viewed + 60
                elif close is not None:
                    st, v_s, p_s, upd = "expired", ts(viewed) if seen else None, None, close
                elif seen:
                    st, v_s, p_s, upd = "viewed", ts(viewed), None, viewed
                else:
                    st, v_s, p_s, upd = "notified", None, None, notified
            n_s = ts(notified)
            tails.append((lead_s, str(vi + 1), score, st, n_s, v_s, p_s, n_s, ts(min(upd, now))))
        if tails:
            seq += 1
            push(heap, (dist, seq, _EV_DISTRIBUTE, tails))
        for when, vi in buyers:
            pi = discount_index(when, dist)
            age = now - when
            r = rnd()
            if age < 3 * _DAY:
                lead_status = "pending" if r < 0.6 else "contacted"
            elif age < 21 * _DAY:
                lead_status = ("contacted", "contacted", "quoted", "quoted", "pending",
                               "lost", "booked")[int(r * 7)]  # fmt: skip
            else:
                lead_status = ("booked", "booked", "booked", "lost", "lost", "lost", "lost",
                               "quoted", "contacted", "pending")[int(r * 10)]  # fmt: skip
            upd = when if lead_status == "pending" else when + int(rnd() * min(age, 20 * _DAY))
            seq += 1
            push(heap, (when, seq, _EV_PURCHASE,
                        (lead_s, vi, base * (100 - step_pct[pi]) // 100, step_pct_s[pi],
                         lead_status, ts(upd))))  # fmt: skip

        if len(leads_out) + len(matches_out) + len(purchases_out) + len(tx_out) >= chunk_rows:
            yield buffers
            buffers = {t: [] for t in TABLES}
            leads_out = buffers["leads"]
            matches_out = buffers["lead_matches"]
            purchases_out = buffers["lead_purchases"]
            tx_out = buffers["credit_transactions"]

    run_until(now)

    # ---- venues last: their balances and activity are final only now
    venues_out = buffers["venues"]
    for vi in range(n_venues):
        name, contact, email, phone, address, suburb, state, postcode = v_text[vi]
        approved = v_approved[vi]
        status = v_status[vi]
        changed = 0  # when the venue was deactivated or suspended
        if approved is None:
            activity = None
        elif status == "active":
            activity = max(approved, last_tx[vi], now - int(rnd() * 20 * _DAY))  # logins
        else:
            changed = v_until[vi]
            activity = max(approved, last_tx[vi], min(changed, now - _DAY))
        updated = max(v_created[vi], approved or 0, last_tx[vi], changed, activity or 0)
        area = v_area[vi]
        venues_out.append(
            (str(vi + 1), name, contact, email, phone, address, suburb, state, postcode,
             None if area is None else str(area + 1), status, money(balance[vi]),
             None if approved is None else ts(approved),
             None if activity is None else ts(activity), ts(v_created[vi]), ts(updated))
        )  # fmt: skip
        if len(venues_out) >= chunk_rows:
            yield buffers
            buffers = {t: [] for t in TABLES}
            venues_out = buffers["venues"]
    if edge_cases:
        for table, rows in edge_case_rows().items():
            buffers[table].extend(rows)
    yield buffers


# --------------------------------------------------------------------------------------
# Edge cases
# --------------------------------------------------------------------------------------

ZERO_TS = "0000-00-00 00:00:00"
ZERO_DATE = "0000-00-00"


def _edge_description_60kb() -> str:
    """Return a deterministic text of exactly 61,440 UTF-8 bytes, with multi-byte chars."""
    parts: list[str] = []
    size = 0
    i = 0
    limit = 60 * 1024
    while True:
        line = f"Audit line {i:05d}: Café ☕ top-up reconciled \u2013 ref #{i * 7919 % 100000}\n"
        n = len(line.encode())
        if size + n > limit:
            break
        parts.append(line)
        size += n
        i += 1
    parts.append("x" * (limit - size))
    return "".join(parts)


def _edge(table: str, **values: str | int | None) -> Row:
    """Build an edge row in COLUMNS order; unspecified columns are NULL (must be nullable)."""
    cols = COLUMNS[table]
    unknown = set(values) - set(cols)
    if unknown:
        raise KeyError(f"{table}: unknown columns {sorted(unknown)}")
    row = []
    for c in cols:
        v = values.get(c)
        if v is None and c in NOT_NULL[table]:
            raise ValueError(f"{table}.{c} is NOT NULL")
        row.append(None if v is None else str(v))
    return tuple(row)


def edge_case_rows() -> dict[str, list[Row]]:
    """Return the fixed legacy rows described in the module docstring (ids EDGE_ID_BASE+n)."""
    return {table: list(rows) for table, rows in _edge_case_rows().items()}


@cache
def _edge_case_rows() -> dict[str, list[Row]]:
    """Build the edge rows once (the 60 KB text is not free); callers get copies."""
    e = EDGE_ID_BASE
    z = ZERO_TS
    nasty = "Tab\there, newline\nthere, \"quotes\", 'single', back\\slash \\N ☀️ Ümlaut"
    zero_ts = {"created_at": z, "updated_at": z}
    rows: dict[str, list[Row]] = {t: [] for t in TABLES}
    rows["occasion_types"] += [
        _edge("occasion_types", id=e + 1, key="legacy_zero_dates",
              label="Fête \"Zéro\" d'été 🎉", is_active=0, sort_order=-1, **zero_ts),
        _edge("occasion_types", id=e + 2, key="legacy_nulls", label="Legacy (NULL timestamps)",
              is_active=1, sort_order=2147483647),
    ]  # fmt: skip
    rows["areas"] += [
        _edge("areas", id=e + 1, name="Zero-date Area", **zero_ts),
        _edge("areas", id=e + 2, name=nasty),
    ]
    rows["venues"] += [
        _edge("venues", id=e + 1, business_name="Zero Date Lounge", contact_name="Alex Zero",
              contact_email="alex@zerodate.example", contact_phone="0400 000 000",
              address="0 Nowhere Lane", suburb="Fitzroy", state="VIC", postcode="3065",
              area_id=MISSING_AREA_ID, status="archived", credit_balance="99999999.99",
              approved_at=z, last_activity_at=z, **zero_ts),
        _edge("venues", id=e + 2, business_name="Nullable Nook", status="pending",
              credit_balance="-99999999.99"),
        _edge("venues", id=e + 3,
              business_name="Café \"Le Bar\" 🍸 O'Reilly's \\ Tab\tNew\nLine\r\nEnd\\",
              contact_name="Zoë Ñúñez-O'Brien 👩\u200d🍳", contact_email="zoë+party@exämple.com.au",
              contact_phone="+61 (3) 9999\t0000", address="Level 2\n123 \"Smith\" St\\Rear",
              suburb="St Kilda", state="VIC", postcode="3182", area_id=3, status="active",
              credit_balance="-123.45", approved_at="2023-12-01 10:00:00",
              last_activity_at="2024-01-03 12:00:00", created_at="2023-11-30 09:00:00",
              updated_at="2024-01-03 12:00:00"),
        _edge("venues", id=e + 4, business_name="Unreferenced Venue Pty Ltd",
              contact_name="Pat Lonely", contact_email="pat@unreferenced.example",
              contact_phone="03 9000 0000", address="1 Quiet Street", suburb="Kew", state="VIC",
              postcode="3101", area_id=4, status="inactive", credit_balance="0.00",
              approved_at="2023-02-01 00:00:00", last_activity_at="2023-02-02 00:00:00",
              created_at="2023-01-31 00:00:00", updated_at="2023-02-02 00:00:00"),
    ]  # fmt: skip
    rows["rooms"] += [
        _edge("rooms", id=e + 1, venue_id=e + 1, name="Zero Room", style="cocktail",
              capacity=80, **zero_ts),
        _edge("rooms", id=e + 2, venue_id=e + 1, name="Nullable Room"),
        _edge("rooms", id=e + 3, venue_id=MISSING_VENUE_ID,
              name="Salle «Privée» 🥂\ttab\\", style="speakeasy_legacy", capacity=0,
              created_at="2024-02-01 00:00:00", updated_at="2024-02-01 00:00:00"),
    ]  # fmt: skip
    lead_common = {"discount_percent": 0, "purchase_target": 3, "purchase_count": 0}
    rows["leads"] += [
        _edge("leads", id=e + 1, first_name="Zero", last_name="Dates",
              email="zero@dates.example", phone="0400 000 001",
              occasion_type="murder_mystery_night", guest_count=40, guest_count_display="30-50",
              preferred_date=ZERO_DATE, suburb="Fitzroy", suburb_preferences="[]",
              location_selections="{}", status="on_hold", base_price="18.00",
              current_price="18.00", **lead_common, distributed_at=z, fulfilled_at=z,
              expires_at=z, **zero_ts),
        _edge("leads", id=e + 2, occasion_type="wedding_reception", status="new",
              **lead_common),
        _edge("leads", id=e + 3, first_name="Zoë \"Zee\"\tTab",
              last_name="O'Brien-Nguyễn 🎂\nNewline\\", email="zoë.o'brien+🎂@exämple.com",
              phone="+61\t400 000 003", occasion_type="21st_birthday", guest_count=65,
              guest_count_display='50-80 "approx"', preferred_date="2024-05-00",
              suburb="Fitzroy",
              suburb_preferences='[["Fitzroy", "Collingwood"], '
                                 '{"suburb": "Carlton", "note": "Caf\\u00e9 ☕"}, null, 3]',
              location_selections='[{"area_id": 3, "suburb": "Fitzroy", '
                                  '"extra": {"nested": [1, 2, {"deep": null}]}}, '
                                  '{"area_id": null, "suburb": null}]',
              status="partially_fulfilled", base_price="18.00", current_price="16.20",
              discount_percent=10, purchase_target=3, purchase_count=1,
              distributed_at="2024-01-02 08:00:00", expires_at="2024-01-16 08:00:00",
              created_at="2024-01-02 07:30:00", updated_at="2024-01-03 12:00:00"),
        _edge("leads", id=e + 4, first_name="Jay", last_name="Null", email="jay@null.example",
              occasion_type="Hens Night", guest_count=25, guest_count_display="20-30",
              preferred_date="2024-00-00", suburb="Richmond", suburb_preferences="null",
              location_selections="null", status="expired", base_price="12.00",
              current_price="8.40", discount_percent=30, purchase_target=3, purchase_count=0,
              distributed_at="2024-03-01 09:00:00", expires_at="2024-03-15 09:00:00",
              created_at="2024-03-01 08:45:00", updated_at="2024-03-15 09:00:00"),
        _edge("leads", id=e + 5, first_name="Mal", last_name="Formed",
              email="mal@formed.example", occasion_type="engagement_party", guest_count=120,
              guest_count_display="100-150", preferred_date="2024-09-14", suburb="Carlton",
              suburb_preferences='["Fitzroy", "Carlton"',
              location_selections="{area_id: 3, suburb: 'Fitzroy'}", status="distributed",
              base_price="40.00", current_price="40.00", **lead_common,
              distributed_at="2024-04-01 09:00:00", expires_at="2024-04-15 09:00:00",
              created_at="2024-04-01 08:50:00", updated_at="2024-04-01 09:00:00"),
        _edge("leads", id=e + 6, first_name="Max", last_name="Extreme",
              email="max@extreme.example", phone="0400 000 006",
              occasion_type="corporate_function", guest_count=4294967295, guest_count_display="",
              preferred_date="9999-12-31", suburb="Docklands", suburb_preferences="",
              location_selections="not json \\ 🙃", status="fulfilled",
              base_price="99999999.99", current_price="-99999999.99", discount_percent=255,
              purchase_target=0, purchase_count=255, distributed_at="2024-05-01 00:00:00",
              fulfilled_at="2038-01-19 03:14:07", expires_at="2038-01-19 03:14:07",
              created_at="1970-01-01 00:00:01", updated_at="2038-01-19 03:14:07"),
    ]  # fmt: skip
    rows["lead_matches"] += [
        _edge("lead_matches", id=e + 1, lead_id=e + 1, venue_id=e + 1, match_score="999.99",
              status="superseded", notified_at=z, viewed_at=z, purchased_at=z, **zero_ts),
        _edge("lead_matches", id=e + 2, lead_id=MISSING_LEAD_ID, venue_id=MISSING_VENUE_ID,
              status="notified"),
        _edge("lead_matches", id=e + 3, lead_id=e + 3, venue_id=MISSING_VENUE_ID,
              match_score="-999.99", status="declined", notified_at="2024-01-02 08:00:00",
              viewed_at="2024-01-02 09:00:00", created_at="2024-01-02 08:00:00",
              updated_at="2024-01-02 09:01:00"),
        _edge("lead_matches", id=e + 4, lead_id=MISSING_LEAD_ID, venue_id=e + 3,
              match_score="0.00", status="viewed", notified_at="2024-01-01 08:00:00",
              viewed_at="2024-01-01 08:30:00", created_at="2024-01-01 08:00:00",
              updated_at="2024-01-01 08:30:00"),
    ]  # fmt: skip
    rows["lead_purchases"] += [
        _edge("lead_purchases", id=e + 1, lead_id=e + 1, venue_id=e + 1,
              amount_paid="99999999.99", discount_percent=0, lead_status="refunded", **zero_ts),
        _edge("lead_purchases", id=e + 2, lead_id=MISSING_LEAD_ID, venue_id=e + 3,
              amount_paid="173.45", discount_percent=10, lead_status="booked"),
        _edge("lead_purchases", id=e + 3, lead_id=e + 3, venue_id=MISSING_VENUE_ID,
              amount_paid="-99999999.99", discount_percent=0, lead_status="pending",
              created_at="2024-01-03 10:00:00", updated_at="2024-01-03 10:00:00"),
        _edge("lead_purchases", id=e + 4, lead_id=e + 3, venue_id=e + 3, amount_paid="0.00",
              discount_percent=100, lead_status="contacted", created_at="2024-01-03 12:00:00",
              updated_at="2024-01-04 12:00:00"),
    ]  # fmt: skip
    rows["credit_transactions"] += [
        _edge("credit_transactions", id=e + 1, venue_id=e + 3, type="topup", amount="50.00",
              balance_after="50.00", stripe_payment_intent_id="pi_3EDGEcase0000000000000001",
              description="Top-up\t\"quoted\" 'single' ☕ Café\r\nsecond line",
              admin_note="path C:\\temp\\ and the text \\N, trailing backslash\\",
              created_at="2024-01-01 09:00:00", updated_at="2024-01-01 09:00:00"),
        _edge("credit_transactions", id=e + 2, venue_id=e + 3, type="purchase",
              amount="-173.45", balance_after="-123.45", lead_purchase_id=e + 2,
              description="Lead purchase (lead missing)", created_at="2024-01-02 10:00:00",
              updated_at="2024-01-02 10:00:00"),
        _edge("credit_transactions", id=e + 3, venue_id=e + 3, type="purchase", amount="0.00",
              balance_after="-123.45", lead_purchase_id=e + 4, description="Free lead",
              created_at="2024-01-03 12:00:00", updated_at="2024-01-03 12:00:00"),
        _edge("credit_transactions", id=e + 4, venue_id=e + 1, type="chargeback",
              amount="99999999.99", balance_after="99999999.99",
              description=_edge_description_60kb(), admin_note="60 KB description", **zero_ts),
        _edge("credit_transactions", id=e + 5, venue_id=e + 2, type="adjustment",
              amount="-99999999.99", balance_after="-99999999.99"),
        _edge("credit_transactions", id=e + 6, venue_id=MISSING_VENUE_ID, type="purchase",
              amount="-25.00", balance_after="-25.00",
              lead_purchase_id=MISSING_LEAD_PURCHASE_ID, description="Orphan purchase",
              created_at="2024-06-01 00:00:00", updated_at="2024-06-01 00:00:00"),
    ]  # fmt: skip
    return rows


# --------------------------------------------------------------------------------------
# Pure helpers for tests
# --------------------------------------------------------------------------------------


def iter_rows(
    table: str, scale: float, seed: int, edge_cases: bool = False
) -> Iterator[dict[str, str | None]]:
    """Yield one table's rows as {column: text or None} (runs the whole simulation)."""
    cols = COLUMNS[table]
    for chunk in generate(scale, seed, edge_cases):
        for row in chunk[table]:
            yield dict(zip(cols, row, strict=True))


def count_rows(scale: float, seed: int, edge_cases: bool = False) -> dict[str, int]:
    """Return the number of rows per table that generate() produces."""
    counts = dict.fromkeys(TABLES, 0)
    for chunk in generate(scale, seed, edge_cases):
        for table, rows in chunk.items():
            counts[table] += len(rows)
    return counts


def row_checksum(row: Row) -> int:
    """CRC32 of the row joined like CONCAT_WS('|', ...) (NULLs skipped), as MariaDB computes."""
    return zlib.crc32("|".join([v for v in row if v is not None]).encode())


def checksum_sql(table: str) -> str:
    """SQL returning (row count, sum of row CRC32s) comparable with table_checksums()."""
    cols = ", ".join(f"`{c}`" for c in COLUMNS[table])
    return f"SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('|', {cols}))), 0) FROM `{table}`"


def table_checksums(
    scale: float, seed: int, edge_cases: bool = False
) -> dict[str, tuple[int, int]]:
    """Return {table: (row count, sum of row_checksum)} of the generated dataset."""
    out = {t: (0, 0) for t in TABLES}
    for chunk in generate(scale, seed, edge_cases):
        for table, rows in chunk.items():
            n, s = out[table]
            out[table] = (n + len(rows), s + sum(map(row_checksum, rows)))
    return out


def to_python(table: str, row: Row) -> dict[str, Any]:
    """Convert a row to typed values: int, Decimal, datetime (UTC), date, str or None.

    Zero and partial-zero dates ('0000-00-00', '2024-05-00') cannot be represented and stay
    strings, exactly as stored.
    """
    out: dict[str, Any] = {}
    for (col, kind), v in zip(_KINDS[table].items(), row, strict=True):
        if v is None or kind in ("str", "json"):
            out[col] = v
        elif kind == "int":
            out[col] = int(v)
        elif kind == "dec":
            out[col] = Decimal(v)
        elif kind == "ts":
            out[col] = v if v.startswith("0000") else datetime.fromisoformat(v).replace(tzinfo=UTC)
        else:  # date
            try:
                out[col] = date.fromisoformat(v)
            except ValueError:
                out[col] = v
    return out


# --------------------------------------------------------------------------------------
# TSV and loading
# --------------------------------------------------------------------------------------

_TSV_ESCAPES = str.maketrans(
    {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0", "\x1a": "\\Z"}
)


def tsv_field(v: str | None) -> str:
    """Escape one value for LOAD DATA ... FIELDS ESCAPED BY '\\\\' (NULL is \\N)."""
    return "\\N" if v is None else v.translate(_TSV_ESCAPES)


def tsv_lines(rows: list[Row]) -> str:
    """Render rows as LOAD DATA text: tab-separated, '\\n'-terminated, escaped."""
    out = []
    for row in rows:
        nulls = row.count(None)
        line = "\t".join(["\\N" if v is None else v for v in row] if nulls else row)
        # Fast path: the joined line proves no value holds a tab, newline, CR or backslash
        # (the only backslashes are those of the \N markers); otherwise escape per value.
        if (
            line.count("\t") != len(row) - 1
            or line.count("\\") != nulls
            or "\n" in line
            or "\r" in line
            or "\0" in line
            or "\x1a" in line
        ):
            line = "\t".join([tsv_field(v) for v in row])
        out.append(line)
    out.append("")
    return "\n".join(out)


def _load_sql(table: str) -> str:
    cols = ", ".join(f"`{c}`" for c in COLUMNS[table])
    return (
        f"LOAD DATA LOCAL INFILE %s INTO TABLE `{table}` CHARACTER SET utf8mb4 "
        "FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' "
        f"({cols})"
    )


def _insert_sql(table: str) -> str:
    cols = ", ".join(f"`{c}`" for c in COLUMNS[table])
    marks = ", ".join(["%s"] * len(COLUMNS[table]))
    return f"INSERT INTO `{table}` ({cols}) VALUES ({marks})"


def _connect(conn_params: Mapping[str, Any], database: str | None) -> pymysql.Connection:
    params = dict(conn_params)
    params.setdefault("charset", "utf8mb4")
    params["local_infile"] = True
    params["autocommit"] = True
    if database is not None:
        params["database"] = database
    conn = pymysql.connect(**params)
    with conn.cursor() as cur:
        # Timestamps are UTC text: do not let the server's zone shift them.
        cur.execute("SET SESSION time_zone = '+00:00'")
    return conn


def _check_warnings(cur: pymysql.cursors.Cursor, table: str) -> None:
    if cur.warning_count:
        cur.execute("SHOW WARNINGS LIMIT 5")
        raise RuntimeError(f"{table}: load produced warnings: {cur.fetchall()!r}")


def _load_rows(
    conn: pymysql.Connection, table: str, rows: list[Row], method: str, tmpdir: str
) -> None:
    """Load rows into table with LOAD DATA LOCAL (method 'infile') or multi-row INSERTs."""
    with conn.cursor() as cur:
        if method == "infile":
            path = os.path.join(tmpdir, f"{table}.edge.tsv")
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write(tsv_lines(rows))
            try:
                cur.execute(_load_sql(table), (path,))
            finally:
                os.unlink(path)
        else:
            cur.executemany(_insert_sql(table), rows)
        _check_warnings(cur, table)
        if cur.rowcount != len(rows):
            # LOAD DATA LOCAL silently skips duplicate keys: treat a short count as an error.
            raise RuntimeError(f"{table}: loaded {cur.rowcount} rows, expected {len(rows)}")


def _ensure_local_infile(conn: pymysql.Connection, log: Callable[[str], None]) -> bool:
    """True if the server accepts LOAD DATA LOCAL, enabling it globally if we may."""
    with conn.cursor() as cur:
        cur.execute("SHOW GLOBAL VARIABLES LIKE 'local_infile'")
        row = cur.fetchone()
        if row and str(row[1]).upper() in ("ON", "1"):
            return True
        try:
            cur.execute("SET GLOBAL local_infile = 1")
        except pymysql.MySQLError as exc:
            log(f"local_infile is OFF and cannot be enabled ({exc}); using INSERTs")
            return False
        log("local_infile was OFF: enabled it with SET GLOBAL local_infile = 1")
        return True


def create_database_schema(conn_params: Mapping[str, Any], database: str) -> None:
    """Create the database if missing and the 8 tables from the DDL fixture."""
    conn = _connect(conn_params, None)
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"CREATE DATABASE IF NOT EXISTS `{database}` "
                "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
            cur.execute(f"USE `{database}`")
            for stmt in schema_statements():
                cur.execute(stmt)
    finally:
        conn.close()


def schema_statements() -> list[str]:
    """Return the CREATE TABLE statements of the DDL fixture, comments stripped."""
    text = SCHEMA_FILE.read_text(encoding="utf-8")
    statements = []
    for chunk in text.split(";\n"):
        body = "\n".join(ln for ln in chunk.splitlines() if not ln.lstrip().startswith("--"))
        if body.strip():
            statements.append(body.strip())
    return statements


def _secondary_indexes(conn: pymysql.Connection, database: str) -> dict[str, list[str]]:
    """Return {table: ['ADD INDEX ...' clauses]} for the plain B-tree indexes we may defer.

    Unique, full-text, spatial and functional indexes are left alone: they are either
    cheap here (occasion_types.key) or cannot be rebuilt from information_schema alone.
    """
    with conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, INDEX_TYPE, COLUMN_NAME, SUB_PART, "
            "COLLATION FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
            "ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
            (database,),
        )
        rows = cur.fetchall()
    defs: dict[tuple[str, str], list[str]] = {}
    keep: set[tuple[str, str]] = set()
    for table, index, non_unique, kind, column, sub_part, collation in rows:
        if table not in TABLES:
            continue
        if not non_unique or kind != "BTREE" or column is None:
            keep.add((table, index))
            continue
        part = f"`{column}`" + (f"({sub_part})" if sub_part else "")
        defs.setdefault((table, index), []).append(part + (" DESC" if collation == "D" else ""))
    out: dict[str, list[str]] = {}
    for (table, index), cols in defs.items():
        if (table, index) not in keep:
            out.setdefault(table, []).append(f"ADD INDEX `{index}` ({', '.join(cols)})")
    return out


def _drop_indexes(conn: pymysql.Connection, indexes: dict[str, list[str]]) -> None:
    with conn.cursor() as cur:
        for table, clauses in indexes.items():
            names = [c.split("`")[1] for c in clauses]
            cur.execute(f"ALTER TABLE `{table}` " + ", ".join(f"DROP INDEX `{n}`" for n in names))


def _add_indexes(conn: pymysql.Connection, indexes: dict[str, list[str]]) -> None:
    with conn.cursor() as cur:
        for table, clauses in indexes.items():
            # One ALTER per table: InnoDB builds all its indexes in one sorted pass.
            cur.execute(f"ALTER TABLE `{table}` " + ", ".join(clauses))


class _Loader(threading.Thread):
    """Loads TSV files (or row batches) from a queue on its own connection.

    It lets the server ingest one chunk while Python generates the next: the two
    cores of the test machines are then both busy.
    """

    def __init__(self, conn: pymysql.Connection, method: str) -> None:
        super().__init__(name="synthetic-loader", daemon=True)
        self.conn = conn
        self.method = method
        self.jobs: queue.Queue[tuple[str, str | list[Row], int] | None] = queue.Queue(maxsize=12)
        self.error: BaseException | None = None
        self.busy = 0.0  # seconds spent waiting on the server: tells who the bottleneck is

    def run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            if self.error is not None:
                continue  # drain the queue so the producer never blocks
            table, payload, n = job
            started = time.perf_counter()
            try:
                with self.conn.cursor() as cur:
                    if isinstance(payload, str):
                        try:
                            cur.execute(_load_sql(table), (payload,))
                        finally:
                            os.unlink(payload)
                        loaded = cur.rowcount
                    else:
                        loaded = 0
                        for i in range(0, len(payload), 2000):
                            cur.executemany(_insert_sql(table), payload[i : i + 2000])
                            loaded += cur.rowcount
                    _check_warnings(cur, table)
                if loaded != n:
                    raise RuntimeError(f"{table}: loaded {loaded} rows, expected {n}")
            except BaseException as exc:
                self.error = exc
            self.busy += time.perf_counter() - started


def load(
    conn_params: Mapping[str, Any],
    database: str,
    scale: float,
    seed: int = 42,
    edge_cases: bool = False,
    create_schema: bool = False,
    *,
    method: str = "auto",
    defer_indexes: bool = True,
    chunk_rows: int = 50_000,
    log: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Generate the dataset and load it into database; return rows loaded per table.

    conn_params are pymysql.connect() keyword arguments (host, port, user, password...).
    The 8 tables must exist and be empty, unless create_schema creates them (and the
    database, if missing). method: 'infile' (LOAD DATA LOCAL), 'insert', or 'auto'
    (infile when the server allows it). With defer_indexes, the plain secondary indexes
    of the (empty) tables are dropped during the load and rebuilt at the end, even if
    the load fails: a sorted rebuild is several times cheaper than random index
    inserts once the indexes outgrow the buffer pool.
    """
    say = log or (lambda _msg: None)
    if method not in ("auto", "infile", "insert"):
        raise ValueError(f"method must be auto, infile or insert, not {method!r}")
    planned_sizes(scale)  # validates the scale before touching the database
    if create_schema:
        create_database_schema(conn_params, database)
    conn = _connect(conn_params, database)
    loader_conn = _connect(conn_params, database)
    try:
        with conn.cursor() as cur:
            for table in TABLES:
                cur.execute(f"SELECT 1 FROM `{table}` LIMIT 1")
                if cur.fetchone():
                    raise RuntimeError(f"{database}.{table} is not empty; refusing to load")
        if method == "auto":
            method = "infile" if _ensure_local_infile(conn, say) else "insert"
        say(f"loading scale={scale:g} seed={seed} into {database} with {method}")
        indexes = _secondary_indexes(conn, database) if defer_indexes else {}
        _drop_indexes(conn, indexes)
        try:
            counts = _load_all(conn, loader_conn, scale, seed, edge_cases, method,
                               chunk_rows, say)  # fmt: skip
        finally:
            started = time.perf_counter()
            _add_indexes(conn, indexes)
            if indexes:
                say(f"rebuilt secondary indexes in {time.perf_counter() - started:.1f} s")
        return counts
    finally:
        conn.close()
        loader_conn.close()


def _load_all(
    conn: pymysql.Connection,
    loader_conn: pymysql.Connection,
    scale: float,
    seed: int,
    edge_cases: bool,
    method: str,
    chunk_rows: int,
    say: Callable[[str], None],
) -> dict[str, int]:
    """Stream generate() into the loader thread, then add the edge rows."""
    counts = dict.fromkeys(TABLES, 0)
    started = time.perf_counter()
    loader = _Loader(loader_conn, method)
    loader.start()
    with tempfile.TemporaryDirectory(prefix="ph_synthetic_") as tmpdir:
        try:
            part = 0
            for chunk in generate(scale, seed, edge_cases=False, chunk_rows=chunk_rows):
                if loader.error is not None:
                    break
                for table, rows in chunk.items():
                    if not rows:
                        continue
                    counts[table] += len(rows)
                    if method == "infile":
                        part += 1
                        path = os.path.join(tmpdir, f"{table}.{part:06d}.tsv")
                        with open(path, "w", encoding="utf-8", newline="") as f:
                            f.write(tsv_lines(rows))
                        loader.jobs.put((table, path, len(rows)))
                    else:
                        loader.jobs.put((table, rows, len(rows)))
        finally:
            loader.jobs.put(None)
            loader.join()
        if loader.error is not None:
            raise loader.error
        say(
            f"loaded {sum(counts.values()):,} rows in {time.perf_counter() - started:.1f} s "
            f"(the server was busy for {loader.busy:.1f} s of it)"
        )
        if edge_cases:
            # Zero dates and malformed JSON need a permissive session: no strict or
            # zero-date modes, and no CHECK (json_valid(...)) enforcement.
            with conn.cursor() as cur:
                cur.execute("SET SESSION sql_mode = ''")
                cur.execute("SET SESSION check_constraint_checks = 0")
            for table, rows in edge_case_rows().items():
                _load_rows(conn, table, rows, method, tmpdir)
                counts[table] += len(rows)
            say(f"loaded {sum(len(r) for r in edge_case_rows().values())} edge-case rows")
    return counts


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: generate and load a synthetic Partyhelp database."""
    p = argparse.ArgumentParser(
        prog="python -m scripts.synthetic", description=__doc__.splitlines()[0]
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3306)
    p.add_argument("--user", default="root")
    p.add_argument("--password", default="")
    p.add_argument("--database", required=True)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--create-schema",
        action="store_true",
        help="create the database (if missing) and the tables from the fixture",
    )
    p.add_argument(
        "--edge-cases",
        action="store_true",
        help="add the fixed legacy rows (ids from EDGE_ID_BASE + 1)",
    )
    p.add_argument("--method", choices=("auto", "infile", "insert"), default="auto")
    p.add_argument("--chunk-rows", type=int, default=50_000)
    p.add_argument(
        "--keep-indexes",
        action="store_true",
        help="load with the secondary indexes in place (slower at large scales)",
    )
    args = p.parse_args(argv)
    params = {"host": args.host, "port": args.port, "user": args.user, "password": args.password}

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    counts = load(params, args.database, args.scale, args.seed, edge_cases=args.edge_cases,
                  create_schema=args.create_schema, method=args.method,
                  defer_indexes=not args.keep_indexes, chunk_rows=args.chunk_rows,
                  log=log)  # fmt: skip
    for table in TABLES:
        print(f"{table}\t{counts[table]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
