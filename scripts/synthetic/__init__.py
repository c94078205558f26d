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
fixed "now" of every dataset, so output never depends on the wall clock; ``load(...,
ends_now=True)`` moves every generated date so the data end an hour ago instead, for a source
that a sync finds fresh), with seasonality
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
A fixed set of legacy rows (zero dates, NULLs, orphans, extremes, malformed JSON, nasty
text), identical for every scale and seed, with ids ``EDGE_ID_BASE + n``: the table of
them is in :mod:`scripts.synthetic.edge_cases`.

Rows
----
A row is a tuple of ``str | None`` in :data:`COLUMNS` order: each value is the text MariaDB
returns for the stored value (``'12.50'``, ``'2024-01-02 03:04:05'``, JSON as stored), so
``CRC32(CONCAT_WS('|', ...))`` computed in SQL (:func:`checksum_sql`) equals
:func:`row_checksum` computed in Python. :func:`to_python` converts a row to typed values.
Money is exact throughout: integer cents internally, ``Decimal`` at the typed boundary.

Layout
------
One module per source table, each readable on its own: ``occasion_types``, ``areas``,
``venues``, ``rooms``, ``leads``, ``lead_matches``, ``lead_purchases`` and
``credit_transactions``. ``simulation`` runs them in the one fixed order of random draws
(:func:`generate`); ``common`` holds the row layout, ids, clock and formatting,
``reference`` the reference data, ``pricing`` the lead prices, ``events`` the event queue,
``edge_cases`` the legacy rows, ``rows`` the pure helpers for tests, ``schema`` the DDL
(``sql/mysql/partyhelp_schema.sql``), ``loader`` the bulk loader (:func:`load`) and ``cli``
the command line.
"""

from __future__ import annotations

from .cli import main
from .common import (
    COLUMNS,
    DATASET_NOW,
    DATASET_START,
    EDGE_ID_BASE,
    KINDS,
    MAX_SCALE,
    MIN_LEADS,
    MIN_VENUES,
    MISSING_AREA_ID,
    MISSING_LEAD_ID,
    MISSING_LEAD_PURCHASE_ID,
    MISSING_VENUE_ID,
    NOT_NULL,
    TABLES,
    Row,
    fmt_money,
    fmt_ts,
)
from .edge_cases import ZERO_DATE, ZERO_TS, edge_case_rows
from .loader import load, seconds_to_now, shift_dates, tsv_field, tsv_lines
from .reference import (
    ABSENT_OCCASIONS,
    AREAS,
    DISCOUNT_STEPS,
    GUEST_BANDS,
    LEAD_LIFETIME,
    OCCASIONS,
    PRICE_MATRIX,
)
from .rows import checksum_sql, count_rows, iter_rows, row_checksum, table_checksums, to_python
from .schema import SCHEMA_FILE, create_database_schema, schema_statements
from .simulation import generate, planned_sizes

_KINDS = KINDS  # the name the tests have always used

__all__ = [
    "ABSENT_OCCASIONS",
    "AREAS",
    "COLUMNS",
    "DATASET_NOW",
    "DATASET_START",
    "DISCOUNT_STEPS",
    "EDGE_ID_BASE",
    "GUEST_BANDS",
    "KINDS",
    "LEAD_LIFETIME",
    "MAX_SCALE",
    "MIN_LEADS",
    "MIN_VENUES",
    "MISSING_AREA_ID",
    "MISSING_LEAD_ID",
    "MISSING_LEAD_PURCHASE_ID",
    "MISSING_VENUE_ID",
    "NOT_NULL",
    "OCCASIONS",
    "PRICE_MATRIX",
    "SCHEMA_FILE",
    "TABLES",
    "ZERO_DATE",
    "ZERO_TS",
    "Row",
    "checksum_sql",
    "count_rows",
    "create_database_schema",
    "edge_case_rows",
    "fmt_money",
    "fmt_ts",
    "generate",
    "iter_rows",
    "load",
    "main",
    "planned_sizes",
    "row_checksum",
    "schema_statements",
    "seconds_to_now",
    "shift_dates",
    "table_checksums",
    "to_python",
    "tsv_field",
    "tsv_lines",
]
