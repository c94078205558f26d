"""An independent reference for what each reporting table must hold.

It reads the source with plain SELECTs (no wire conversions), joins in Python, and
converts one value at a time with the standard library: slow and obvious, so the
fast path (SQL wire forms, columnar conversion, Avro, BigQuery) is checked against
something that shares none of its tricks. Only the two documented derivations
(occasion label from a key, location string from JSON) reuse the unit-tested helpers.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pymysql
from google.cloud import bigquery

from partyhelp_pipeline.batches import location_display, title_from_key

Row = dict[str, Any]
Table = dict[int, Row]  # a table's rows by primary key


def _rows(connection: pymysql.Connection, sql: str) -> list[Row]:
    with connection.cursor(pymysql.cursors.DictCursor) as cursor:
        cursor.execute(sql)
        return list(cursor.fetchall())


def _utc(value: Any) -> dt.datetime | None:
    """A TIMESTAMP read at session time zone +00:00; zero dates come back as strings."""
    return value.replace(tzinfo=dt.UTC) if isinstance(value, dt.datetime) else None


def _date(value: Any) -> dt.date | None:
    return value if isinstance(value, dt.date) else None


def _money(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


def expected_tables(connection: pymysql.Connection, sync_date: dt.date) -> dict[str, Table]:
    """Every reporting table as ``{primary key: row}``, from the source as it is now."""
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION time_zone = '+00:00'")
    labels = {
        r["key"]: r["label"] for r in _rows(connection, "SELECT `key`, label FROM occasion_types")
    }
    areas = {r["id"]: r["name"] for r in _rows(connection, "SELECT id, name FROM areas")}
    venues = {r["id"]: r for r in _rows(connection, "SELECT * FROM venues")}
    leads = {r["id"]: r for r in _rows(connection, "SELECT * FROM leads")}

    def label(key: str | None) -> str | None:
        if key is None:
            return None
        return labels.get(key) or title_from_key(key)

    out: dict[str, Table] = {}
    out["ph_leads"] = {
        lead["id"]: {
            "lead_id": lead["id"],
            "occasion_type": lead["occasion_type"],
            "occasion_label": label(lead["occasion_type"]),
            "guest_count": lead["guest_count"],
            "guest_count_display": lead["guest_count_display"],
            "preferred_date": _date(lead["preferred_date"]),
            "suburb": lead["suburb"],
            "location_display": location_display(
                lead["suburb_preferences"], lead["location_selections"]
            )[0],
            "status": lead["status"],
            "base_price": _money(lead["base_price"]),
            "current_price": _money(lead["current_price"]),
            "discount_percent": lead["discount_percent"],
            "purchase_target": lead["purchase_target"],
            "purchase_count": lead["purchase_count"],
            "distributed_at": _utc(lead["distributed_at"]),
            "fulfilled_at": _utc(lead["fulfilled_at"]),
            "expires_at": _utc(lead["expires_at"]),
            "created_at": _utc(lead["created_at"]),
            "sync_date": sync_date,
        }
        for lead in leads.values()
    }
    out["ph_venues"] = {
        v["id"]: {
            "venue_id": v["id"],
            "business_name": v["business_name"],
            "area_id": v["area_id"],
            "area_name": areas.get(v["area_id"]),
            "suburb": v["suburb"],
            "state": v["state"],
            "postcode": v["postcode"],
            "status": v["status"],
            "credit_balance": _money(v["credit_balance"]),
            "approved_at": _utc(v["approved_at"]),
            "last_activity_at": _utc(v["last_activity_at"]),
            "created_at": _utc(v["created_at"]),
            "sync_date": sync_date,
        }
        for v in venues.values()
    }
    purchases: Table = {}
    for p in _rows(connection, "SELECT * FROM lead_purchases"):
        lead = leads.get(p["lead_id"], {})
        venue = venues.get(p["venue_id"], {})
        purchases[p["id"]] = {
            "lead_purchase_id": p["id"],
            "lead_id": p["lead_id"],
            "venue_id": p["venue_id"],
            "occasion_type": lead.get("occasion_type"),
            "occasion_label": label(lead.get("occasion_type")),
            "preferred_date": _date(lead.get("preferred_date")),
            "guest_count": lead.get("guest_count"),
            "lead_suburb": lead.get("suburb"),
            "lead_status": p["lead_status"],
            "venue_business_name": venue.get("business_name"),
            "venue_area_name": areas.get(venue.get("area_id")),
            "amount_paid": _money(p["amount_paid"]),
            "discount_percent": p["discount_percent"],
            "purchased_at": _utc(p["created_at"]),
            "sync_date": sync_date,
        }
    out["ph_lead_purchases"] = purchases
    out["ph_credit_transactions"] = {
        c["id"]: {
            "credit_transaction_id": c["id"],
            "venue_id": c["venue_id"],
            "venue_business_name": venues.get(c["venue_id"], {}).get("business_name"),
            "type": c["type"],
            "amount": _money(c["amount"]),
            "balance_after": _money(c["balance_after"]),
            "lead_purchase_id": c["lead_purchase_id"],
            "stripe_payment_intent_id": c["stripe_payment_intent_id"],
            "description": c["description"],
            "admin_note": c["admin_note"],
            "created_at": _utc(c["created_at"]),
            "sync_date": sync_date,
        }
        for c in _rows(connection, "SELECT * FROM credit_transactions")
    }
    out["ph_lead_matches"] = {
        m["id"]: {
            "lead_match_id": m["id"],
            "lead_id": m["lead_id"],
            "venue_id": m["venue_id"],
            "venue_business_name": venues.get(m["venue_id"], {}).get("business_name"),
            "match_score": None if m["match_score"] is None else float(m["match_score"]),
            "status": m["status"],
            "notified_at": _utc(m["notified_at"]),
            "viewed_at": _utc(m["viewed_at"]),
            "purchased_at": _utc(m["purchased_at"]),
            "sync_date": sync_date,
        }
        for m in _rows(connection, "SELECT * FROM lead_matches")
    }
    return out


def bigquery_rows(client: bigquery.Client, table_ref: str, key: str) -> Table:
    """A BigQuery table as ``{primary key: row}``."""
    rows = client.query(f"SELECT * FROM `{table_ref}`").result()
    return {row[key]: dict(row.items()) for row in rows}


def diff_tables(expected: Table, actual: Table, limit: int = 10) -> list[str]:
    """Human-readable differences, cell by cell (empty when equal). A column the table has
    and the oracle lacks is one too: a column added to a spec must be taught to the oracle."""
    problems = []
    for key in sorted(set(expected) & set(actual))[:1]:
        for column in sorted(actual[key].keys() - expected[key].keys()):
            problems.append(f"column {column} is not in the oracle (tests/oracle.py)")
    for key in sorted(set(expected) - set(actual))[:limit]:
        problems.append(f"missing row {key}")
    for key in sorted(set(actual) - set(expected))[:limit]:
        problems.append(f"unexpected row {key}")
    for key in sorted(set(expected) & set(actual)):
        for column, value in expected[key].items():
            got = actual[key].get(column, "<absent>")
            if got != value:
                problems.append(f"row {key} column {column}: expected {value!r}, got {got!r}")
                if len(problems) >= limit:
                    return problems
    return problems
