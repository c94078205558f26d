"""Edge cases (``edge_cases=True`` / ``--edge-cases``): legacy rows, as production holds them.

A fixed set of legacy rows, identical for every scale and seed, with ids
``EDGE_ID_BASE + n`` (``EDGE_ID_BASE`` = 900,000,000, far above any generated id so they
never collide, even at scale 1000+). Ids ``E+96``..``E+99`` are never created: they are
the targets of orphan references. They are loaded with ``sql_mode=''`` and, on MariaDB,
``check_constraint_checks=0``. A MySQL JSON column refuses text that is not JSON whatever
the session's settings (MariaDB's JSON is LONGTEXT with a CHECK that the setting switches
off), so on MySQL ``mysql_edge_case_rows`` loads SQL NULL in place of the malformed JSON
of leads E+5 and E+6: those two rows are kept, their malformed-JSON cases are not.

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

The balance invariants of the normal rows (see the package's docstring) also hold for the
edge venues and the missing venue E+98; the purchase/transaction pairing does not hold for
edge purchases E+1 and E+3.
"""

from __future__ import annotations

import json
from functools import cache

from .common import (
    COLUMNS,
    EDGE_ID_BASE,
    KINDS,
    MISSING_AREA_ID,
    MISSING_LEAD_ID,
    MISSING_LEAD_PURCHASE_ID,
    MISSING_VENUE_ID,
    NOT_NULL,
    Row,
)

ZERO_TS = "0000-00-00 00:00:00"
ZERO_DATE = "0000-00-00"

E = EDGE_ID_BASE
Z = ZERO_TS
_NASTY = "Tab\there, newline\nthere, \"quotes\", 'single', back\\slash \\N ☀️ Ümlaut"
_ZERO_TS: dict[str, str | int | None] = {"created_at": Z, "updated_at": Z}
_LEAD_COMMON: dict[str, str | int | None] = {
    "discount_percent": 0,
    "purchase_target": 3,
    "purchase_count": 0,
}


def edge_case_rows() -> dict[str, list[Row]]:
    """Return the fixed legacy rows of the table above (ids EDGE_ID_BASE + n), as copies."""
    return {table: list(rows) for table, rows in _edge_case_rows().items()}


@cache
def _edge_case_rows() -> dict[str, list[Row]]:
    """Build the edge rows once (the 60 KB text is not free); callers get copies."""
    return {
        "occasion_types": _occasion_types(),
        "areas": _areas(),
        "venues": _venues(),
        "rooms": _rooms(),
        "leads": _leads(),
        "lead_matches": _lead_matches(),
        "lead_purchases": _lead_purchases(),
        "credit_transactions": _credit_transactions(),
    }


def _occasion_types() -> list[Row]:
    return [
        _edge("occasion_types", id=E + 1, key="legacy_zero_dates",
              label="Fête \"Zéro\" d'été 🎉", is_active=0, sort_order=-1, **_ZERO_TS),
        _edge("occasion_types", id=E + 2, key="legacy_nulls", label="Legacy (NULL timestamps)",
              is_active=1, sort_order=2147483647),
    ]  # fmt: skip


def _areas() -> list[Row]:
    return [
        _edge("areas", id=E + 1, name="Zero-date Area", **_ZERO_TS),
        _edge("areas", id=E + 2, name=_NASTY),
    ]


def _venues() -> list[Row]:
    return [
        _edge("venues", id=E + 1, business_name="Zero Date Lounge", contact_name="Alex Zero",
              contact_email="alex@zerodate.example", contact_phone="0400 000 000",
              address="0 Nowhere Lane", suburb="Fitzroy", state="VIC", postcode="3065",
              area_id=MISSING_AREA_ID, status="archived", credit_balance="99999999.99",
              approved_at=Z, last_activity_at=Z, **_ZERO_TS),
        _edge("venues", id=E + 2, business_name="Nullable Nook", status="pending",
              credit_balance="-99999999.99"),
        _edge("venues", id=E + 3,
              business_name="Café \"Le Bar\" 🍸 O'Reilly's \\ Tab\tNew\nLine\r\nEnd\\",
              contact_name="Zoë Ñúñez-O'Brien 👩\u200d🍳", contact_email="zoë+party@exämple.com.au",
              contact_phone="+61 (3) 9999\t0000", address="Level 2\n123 \"Smith\" St\\Rear",
              suburb="St Kilda", state="VIC", postcode="3182", area_id=3, status="active",
              credit_balance="-123.45", approved_at="2023-12-01 10:00:00",
              last_activity_at="2024-01-03 12:00:00", created_at="2023-11-30 09:00:00",
              updated_at="2024-01-03 12:00:00"),
        _edge("venues", id=E + 4, business_name="Unreferenced Venue Pty Ltd",
              contact_name="Pat Lonely", contact_email="pat@unreferenced.example",
              contact_phone="03 9000 0000", address="1 Quiet Street", suburb="Kew", state="VIC",
              postcode="3101", area_id=4, status="inactive", credit_balance="0.00",
              approved_at="2023-02-01 00:00:00", last_activity_at="2023-02-02 00:00:00",
              created_at="2023-01-31 00:00:00", updated_at="2023-02-02 00:00:00"),
    ]  # fmt: skip


def _rooms() -> list[Row]:
    return [
        _edge("rooms", id=E + 1, venue_id=E + 1, name="Zero Room", style="cocktail",
              capacity=80, **_ZERO_TS),
        _edge("rooms", id=E + 2, venue_id=E + 1, name="Nullable Room"),
        _edge("rooms", id=E + 3, venue_id=MISSING_VENUE_ID,
              name="Salle «Privée» 🥂\ttab\\", style="speakeasy_legacy", capacity=0,
              created_at="2024-02-01 00:00:00", updated_at="2024-02-01 00:00:00"),
    ]  # fmt: skip


def _leads() -> list[Row]:
    return [
        _edge("leads", id=E + 1, first_name="Zero", last_name="Dates",
              email="zero@dates.example", phone="0400 000 001",
              occasion_type="murder_mystery_night", guest_count=40, guest_count_display="30-50",
              preferred_date=ZERO_DATE, suburb="Fitzroy", suburb_preferences="[]",
              location_selections="{}", status="on_hold", base_price="18.00",
              current_price="18.00", **_LEAD_COMMON, distributed_at=Z, fulfilled_at=Z,
              expires_at=Z, **_ZERO_TS),
        _edge("leads", id=E + 2, occasion_type="wedding_reception", status="new",
              **_LEAD_COMMON),
        _edge("leads", id=E + 3, first_name="Zoë \"Zee\"\tTab",
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
        _edge("leads", id=E + 4, first_name="Jay", last_name="Null", email="jay@null.example",
              occasion_type="Hens Night", guest_count=25, guest_count_display="20-30",
              preferred_date="2024-00-00", suburb="Richmond", suburb_preferences="null",
              location_selections="null", status="expired", base_price="12.00",
              current_price="8.40", discount_percent=30, purchase_target=3, purchase_count=0,
              distributed_at="2024-03-01 09:00:00", expires_at="2024-03-15 09:00:00",
              created_at="2024-03-01 08:45:00", updated_at="2024-03-15 09:00:00"),
        _edge("leads", id=E + 5, first_name="Mal", last_name="Formed",
              email="mal@formed.example", occasion_type="engagement_party", guest_count=120,
              guest_count_display="100-150", preferred_date="2024-09-14", suburb="Carlton",
              suburb_preferences='["Fitzroy", "Carlton"',
              location_selections="{area_id: 3, suburb: 'Fitzroy'}", status="distributed",
              base_price="40.00", current_price="40.00", **_LEAD_COMMON,
              distributed_at="2024-04-01 09:00:00", expires_at="2024-04-15 09:00:00",
              created_at="2024-04-01 08:50:00", updated_at="2024-04-01 09:00:00"),
        _edge("leads", id=E + 6, first_name="Max", last_name="Extreme",
              email="max@extreme.example", phone="0400 000 006",
              occasion_type="corporate_function", guest_count=4294967295, guest_count_display="",
              preferred_date="9999-12-31", suburb="Docklands", suburb_preferences="",
              location_selections="not json \\ 🙃", status="fulfilled",
              base_price="99999999.99", current_price="-99999999.99", discount_percent=255,
              purchase_target=0, purchase_count=255, distributed_at="2024-05-01 00:00:00",
              fulfilled_at="2038-01-19 03:14:07", expires_at="2038-01-19 03:14:07",
              created_at="1970-01-01 00:00:01", updated_at="2038-01-19 03:14:07"),
    ]  # fmt: skip


def _lead_matches() -> list[Row]:
    return [
        _edge("lead_matches", id=E + 1, lead_id=E + 1, venue_id=E + 1, match_score="999.99",
              status="superseded", notified_at=Z, viewed_at=Z, purchased_at=Z, **_ZERO_TS),
        _edge("lead_matches", id=E + 2, lead_id=MISSING_LEAD_ID, venue_id=MISSING_VENUE_ID,
              status="notified"),
        _edge("lead_matches", id=E + 3, lead_id=E + 3, venue_id=MISSING_VENUE_ID,
              match_score="-999.99", status="declined", notified_at="2024-01-02 08:00:00",
              viewed_at="2024-01-02 09:00:00", created_at="2024-01-02 08:00:00",
              updated_at="2024-01-02 09:01:00"),
        _edge("lead_matches", id=E + 4, lead_id=MISSING_LEAD_ID, venue_id=E + 3,
              match_score="0.00", status="viewed", notified_at="2024-01-01 08:00:00",
              viewed_at="2024-01-01 08:30:00", created_at="2024-01-01 08:00:00",
              updated_at="2024-01-01 08:30:00"),
    ]  # fmt: skip


def _lead_purchases() -> list[Row]:
    return [
        _edge("lead_purchases", id=E + 1, lead_id=E + 1, venue_id=E + 1,
              amount_paid="99999999.99", discount_percent=0, lead_status="refunded", **_ZERO_TS),
        _edge("lead_purchases", id=E + 2, lead_id=MISSING_LEAD_ID, venue_id=E + 3,
              amount_paid="173.45", discount_percent=10, lead_status="booked"),
        _edge("lead_purchases", id=E + 3, lead_id=E + 3, venue_id=MISSING_VENUE_ID,
              amount_paid="-99999999.99", discount_percent=0, lead_status="pending",
              created_at="2024-01-03 10:00:00", updated_at="2024-01-03 10:00:00"),
        _edge("lead_purchases", id=E + 4, lead_id=E + 3, venue_id=E + 3, amount_paid="0.00",
              discount_percent=100, lead_status="contacted", created_at="2024-01-03 12:00:00",
              updated_at="2024-01-04 12:00:00"),
    ]  # fmt: skip


def _credit_transactions() -> list[Row]:
    return [
        _edge("credit_transactions", id=E + 1, venue_id=E + 3, type="topup", amount="50.00",
              balance_after="50.00", stripe_payment_intent_id="pi_3EDGEcase0000000000000001",
              description="Top-up\t\"quoted\" 'single' ☕ Café\r\nsecond line",
              admin_note="path C:\\temp\\ and the text \\N, trailing backslash\\",
              created_at="2024-01-01 09:00:00", updated_at="2024-01-01 09:00:00"),
        _edge("credit_transactions", id=E + 2, venue_id=E + 3, type="purchase",
              amount="-173.45", balance_after="-123.45", lead_purchase_id=E + 2,
              description="Lead purchase (lead missing)", created_at="2024-01-02 10:00:00",
              updated_at="2024-01-02 10:00:00"),
        _edge("credit_transactions", id=E + 3, venue_id=E + 3, type="purchase", amount="0.00",
              balance_after="-123.45", lead_purchase_id=E + 4, description="Free lead",
              created_at="2024-01-03 12:00:00", updated_at="2024-01-03 12:00:00"),
        _edge("credit_transactions", id=E + 4, venue_id=E + 1, type="chargeback",
              amount="99999999.99", balance_after="99999999.99",
              description=_edge_description_60kb(), admin_note="60 KB description", **_ZERO_TS),
        _edge("credit_transactions", id=E + 5, venue_id=E + 2, type="adjustment",
              amount="-99999999.99", balance_after="-99999999.99"),
        _edge("credit_transactions", id=E + 6, venue_id=MISSING_VENUE_ID, type="purchase",
              amount="-25.00", balance_after="-25.00",
              lead_purchase_id=MISSING_LEAD_PURCHASE_ID, description="Orphan purchase",
              created_at="2024-06-01 00:00:00", updated_at="2024-06-01 00:00:00"),
    ]  # fmt: skip


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


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def mysql_edge_case_rows() -> dict[str, list[Row]]:
    """The edge rows a MySQL server accepts: malformed JSON becomes SQL NULL."""
    rows = {}
    for table, table_rows in edge_case_rows().items():
        json_at = [i for i, c in enumerate(COLUMNS[table]) if KINDS[table][c] == "json"]
        rows[table] = [
            tuple(
                None if i in json_at and v is not None and not _is_json(v) else v
                for i, v in enumerate(row)
            )
            for row in table_rows
        ]
    return rows
