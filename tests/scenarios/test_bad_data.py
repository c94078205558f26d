"""Every kind of legacy row SOURCE_SCHEMA.md allows, synced by the real flow, with the
guarantee: counts equal, money sums equal to the cent, every changed value counted with
example ids in the manifest, logged once per table and shown in the run's summary.

The synthetic generator's edge cases (ids from 900,000,000, see ``scripts/synthetic.py``)
already hold zero dates in every date and timestamp column, NULL in every nullable column,
emoji/accents/quotes/backslashes/tabs/newlines, a 60 KB description, unknown enum values
and occasion keys, orphans both ways, negative balances, DECIMAL(10,2) at both extremes,
and empty, nested, ``null`` and malformed JSON. This module adds, in its own database, what
they lack:

- JSON a Python parser reads but cannot carry: a lone surrogate (``"\\ud800"``) and nesting
  5,000 deep; JSON that is a bare string or number, whitespace only, an object where an
  array is expected, a non-string suburb, names repeated with other case and spacing, a
  valid escaped emoji (a surrogate pair); empty arrays in both columns;
- an occasion label with accents, quotes and emoji that a lead actually uses, an area name
  with tabs, newlines and a literal ``\\N`` that a venue actually uses, and both reaching
  the purchases table; a description that is an empty string (not NULL), one of control
  characters (NUL included) and Unicode separators, and an admin note that is the text
  ``NULL``.

The expected counters are computed from the source with SQL (MariaDB's own ``JSON_VALID``,
zero-date comparisons, anti-joins), independently of the exporter.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from flows.partyhelp_sync import ARTIFACT_KEY
from partyhelp_pipeline.batches import location_display
from partyhelp_pipeline.clients import bigquery_client
from partyhelp_pipeline.spec import TABLES, TableSpec
from tests.conftest import admin_connection
from tests.faultkit import (
    Source,
    assert_totals_equal_source,
    environment,
    flow_run_record,
    manifests,
    money_columns,
    new_target,
    query,
    source_database,
    sync_on,
)
from tests.oracle import bigquery_rows, diff_tables, expected_tables

pytestmark = pytest.mark.usefixtures("stack", "emulators")  # emulators: conftest.py

DAY = dt.date(2026, 9, 1)
E = 900_000_000
DEEP = "[" * 5000 + '"Kew"' + "]" * 5000
EXTRA_LEADS = [  # id, occasion_type, suburb, suburb_preferences, location_selections
    (E + 10, "birthday", None, '"Fitzroy"', "42"),
    (E + 11, "21st_birthday", None, '["\\ud800x", "Kew"]', '[{"suburb": "Kew"}]'),
    (E + 12, "wedding_reception", None, DEEP, "   "),
    (
        E + 13,
        "engagement_party",
        None,
        '{"suburb": "Carlton", "extra": [1, 2]}',
        '[{"area_id": 3, "suburb": {"name": "Fitzroy"}}, {"suburb": "carlton"}]',
    ),
    (E + 14, "engagement_party", None, "[]", "[]"),
    (E + 15, "legacy_zero_dates", 'St Kilda "East" \\ 🏖\tWest\nside', None, None),
    (
        E + 16,
        "high_tea",
        None,
        '["Caf\\u00e9 \\ud83c\\udf89", "  Fitzroy   North "]',
        '[{"suburb": "fitzroy north"}]',
    ),
]
IRREGULAR_JSON = {E + 1, E + 3, E + 10, E + 13}  # shapes read, with parts left out
# Text a careless writer or loader breaks on: NUL, other C0 controls, CR LF, DEL, a BOM, the
# Unicode line and paragraph separators, a zero-width joiner sequence, a combining accent.
CONTROL_TEXT = (
    "a\x00b\x01c\x1fd\r\ne\x7ff\ufeffg\u2028h\u2029i "
    "\U0001f468\u200d\U0001f469\u200d\U0001f467 e\u0301"
)


@pytest.fixture(scope="module")
def source(stack: None) -> Iterator[Source]:
    with source_database("ph_bad", scale=0.01, seed=19, edge_cases=True) as src:
        for lead_id, occasion, suburb, preferences, selections in EXTRA_LEADS:
            src.sql(
                "INSERT INTO leads (id, occasion_type, status, suburb, suburb_preferences, "
                "location_selections, base_price, current_price, created_at, updated_at) "
                "VALUES (%s, %s, 'new', %s, %s, %s, 10.00, 9.99, '2024-06-01 00:00:00', "
                "'2024-06-01 00:00:00')",
                (lead_id, occasion, suburb, preferences, selections),
            )
        src.sql(
            "INSERT INTO venues (id, business_name, area_id, status, credit_balance, "
            "created_at) VALUES (%s, %s, %s, 'active', 0.01, '2024-06-01 00:00:00')",
            (E + 10, 'Bar \\N "Quoted"\t🍸', E + 2),
        )
        src.sql(
            "INSERT INTO lead_purchases (id, lead_id, venue_id, amount_paid, "
            "discount_percent, lead_status, created_at) VALUES (%s, %s, %s, 0.01, 0, "
            "'booked', '2024-06-02 00:00:00')",
            (E + 10, E + 15, E + 10),
        )
        src.sql(
            "INSERT INTO credit_transactions (id, venue_id, type, amount, balance_after, "
            "lead_purchase_id, description, admin_note, created_at) VALUES (%s, %s, "
            "'purchase', -0.01, 0.00, %s, '', NULL, '2024-06-02 00:00:00')",
            (E + 10, E + 10, E + 10),
        )
        src.sql(
            "INSERT INTO credit_transactions (id, venue_id, type, amount, balance_after, "
            "stripe_payment_intent_id, description, admin_note, created_at) VALUES (%s, %s, "
            "'adjustment', 0.00, 0.00, %s, %s, %s, '2024-06-03 00:00:00')",
            (E + 11, E + 10, "pi_\u200b", CONTROL_TEXT, "NULL"),
        )
        yield src


@pytest.fixture(scope="module")
def synced(source: Source) -> Iterator[dict[str, Any]]:
    env = new_target(source, "bad", PARTYHELP_CHUNK_ROWS="2000000000")
    with environment(env) as settings:
        state = sync_on(DAY)
        yield {
            "state": state,
            "settings": settings,
            "manifests": {t: manifests(settings, DAY, t) for t in TABLES},
        }


def _ids(source: Source, sql: str) -> set[int]:
    return {int(row[0]) for row in source.sql(sql)}


# A zero date in the source: a DATE may also have a zero month or day, a TIMESTAMP is zero
# or not at all.
_ZERO = {
    "DATE": "{c} IS NOT NULL AND (YEAR({c}) = 0 OR MONTH({c}) = 0 OR DAYOFMONTH({c}) = 0)",
    "TIMESTAMP": "{c} = '0000-00-00 00:00:00'",
}
_JSON_BAD = "({c} IS NOT NULL AND NOT JSON_VALID({c}))"


def _quoted(source: str) -> str:
    alias, column = source.split(".")
    return f"`{alias}`.`{column}`"


def zero_date_counters(source: Source, spec: TableSpec) -> dict[str, set[int]]:
    """For each DATE and TIMESTAMP column the spec reads from the source: the rows whose
    source value is a zero date, by a plain query over the spec's FROM/JOIN clause."""
    joins = "".join(
        f" LEFT JOIN `{j.table}` AS `{j.alias}` ON {_quoted(f'{j.alias}.{j.key}')} = "
        f"{_quoted(j.parent)}"
        for j in spec.joins
    )
    select = (
        f"SELECT {_quoted(f'{spec.alias}.{spec.key_column}')} "
        f"FROM `{spec.source_table}` AS `{spec.alias}`{joins} WHERE "
    )
    return {
        f"zero_date_nulled:{c.name}": _ids(
            source, select + _ZERO[c.type].format(c=_quoted(c.source))
        )
        for c in spec.output_columns()
        if c.type in _ZERO and c.source and not c.derive
    }


def expected_counters(source: Source) -> dict[str, dict[str, set[int]]]:
    """Which rows each table's counters must name, computed from the source with SQL."""
    unreadable = _ids(
        source,
        "SELECT id FROM leads WHERE "
        + " OR ".join(_JSON_BAD.format(c=c) for c in ("suburb_preferences", "location_selections")),
    )
    expected = {
        "ph_leads": {
            "json_unreadable": unreadable,
            "json_irregular": IRREGULAR_JSON - unreadable,
            "occasion_label_derived": _ids(
                source,
                "SELECT l.id FROM leads AS l LEFT JOIN occasion_types AS ot "
                "ON ot.`key` = l.occasion_type WHERE ot.id IS NULL",
            ),
        },
        "ph_venues": {
            "orphan_area": _ids(
                source,
                "SELECT v.id FROM venues AS v LEFT JOIN areas AS a "
                "ON a.id = v.area_id WHERE v.area_id IS NOT NULL "
                "AND a.id IS NULL",
            ),
        },
        "ph_lead_purchases": {
            "orphan_lead": _ids(
                source,
                "SELECT lp.id FROM lead_purchases AS lp LEFT JOIN "
                "leads AS l ON l.id = lp.lead_id WHERE l.id IS NULL",
            ),
            "orphan_venue": _ids(
                source,
                "SELECT lp.id FROM lead_purchases AS lp LEFT JOIN "
                "venues AS v ON v.id = lp.venue_id "
                "WHERE v.id IS NULL",
            ),
            "occasion_label_derived": _ids(
                source,
                "SELECT lp.id FROM lead_purchases AS lp JOIN leads AS l "
                "ON l.id = lp.lead_id LEFT JOIN occasion_types AS ot "
                "ON ot.`key` = l.occasion_type WHERE ot.id IS NULL",
            ),
        },
        "ph_credit_transactions": {
            "orphan_venue": _ids(
                source,
                "SELECT ct.id FROM credit_transactions AS ct "
                "LEFT JOIN venues AS v ON v.id = ct.venue_id "
                "WHERE v.id IS NULL",
            ),
        },
        "ph_lead_matches": {
            "orphan_venue": _ids(
                source,
                "SELECT lm.id FROM lead_matches AS lm LEFT JOIN "
                "venues AS v ON v.id = lm.venue_id "
                "WHERE v.id IS NULL",
            ),
        },
    }
    for table, spec in TABLES.items():
        expected[table].update(zero_date_counters(source, spec))
    return {table: {k: v for k, v in counters.items() if v} for table, counters in expected.items()}


def test_the_run_completes(synced: dict[str, Any]) -> None:
    assert synced["state"].is_completed(), synced["state"].message


@pytest.mark.parametrize("table", list(TABLES))
def test_every_cell_count_and_money_sum_equals_the_source(
    synced: dict[str, Any], source: Source, table: str
) -> None:
    settings = synced["settings"]
    with admin_connection(source.database) as connection:
        expected = expected_tables(connection, DAY)[table]
    actual = bigquery_rows(
        bigquery_client(settings), settings.table_ref(table), TABLES[table].primary_key
    )
    assert diff_tables(expected, actual) == []
    totals = assert_totals_equal_source(settings, source, table)
    assert totals["n"] == totals["k"] == len(expected)
    (manifest,) = synced["manifests"][table]
    assert manifest.rows == manifest.source_totals["row_count"] == totals["n"]
    for column in money_columns(table):  # the manifest keeps the source's sum, in cents
        assert Decimal(manifest.source_totals[column]).scaleb(-2) == totals[column]


def test_legacy_values_reach_bigquery_as_the_source_holds_them(synced: dict[str, Any]) -> None:
    settings = synced["settings"]

    def one(table: str, key: int) -> dict[str, Any]:
        spec = TABLES[table]
        return query(
            settings,
            f"SELECT * FROM {settings.quoted_table_ref(table)} WHERE `{spec.primary_key}` = {key}",
        )[0]

    lead = one("ph_leads", E + 15)
    assert lead["occasion_label"] == 'Fête "Zéro" d\'été 🎉'
    assert lead["suburb"] == 'St Kilda "East" \\ 🏖\tWest\nside'
    purchase = one("ph_lead_purchases", E + 10)
    assert purchase["occasion_label"] == 'Fête "Zéro" d\'été 🎉'
    assert purchase["venue_area_name"] == (
        "Tab\there, newline\nthere, \"quotes\", 'single', back\\slash \\N ☀️ Ümlaut"
    )
    assert purchase["venue_business_name"] == 'Bar \\N "Quoted"\t🍸'
    credit = one("ph_credit_transactions", E + 10)
    assert credit["description"] == "" and credit["admin_note"] is None
    control = one("ph_credit_transactions", E + 11)
    assert control["description"] == CONTROL_TEXT
    assert control["admin_note"] == "NULL" and control["stripe_payment_intent_id"] == "pi_\u200b"
    assert len(one("ph_credit_transactions", E + 4)["description"].encode()) == 60 * 1024
    displays = {
        r["lead_id"]: r["location_display"]
        for r in query(
            settings,
            f"SELECT lead_id, location_display FROM {settings.quoted_table_ref('ph_leads')}"
            f" WHERE lead_id BETWEEN {E + 10} AND {E + 16}",
        )
    }
    assert displays == {
        E + 10: "Fitzroy",
        E + 11: "Kew",
        E + 12: None,
        E + 13: "Carlton",
        E + 14: None,
        E + 15: None,
        E + 16: "Café 🎉, Fitzroy North",
    }
    extremes = one("ph_venues", E + 2)
    assert extremes["credit_balance"] == Decimal("-99999999.99")
    assert one("ph_venues", E + 1)["credit_balance"] == Decimal("99999999.99")


def test_every_changed_value_is_counted_with_example_ids(
    synced: dict[str, Any], source: Source
) -> None:
    expected = expected_counters(source)
    for table in TABLES:
        (manifest,) = synced["manifests"][table]
        counts, examples = manifest.quality["counts"], manifest.quality["examples"]
        assert counts == {k: len(v) for k, v in expected[table].items()}, table
        for counter, ids in expected[table].items():
            assert set(examples[counter]) <= ids, (table, counter)
            assert len(examples[counter]) == min(5, len(ids)), (table, counter)


def test_quality_is_logged_once_per_table_and_shown_in_the_summary(synced: dict[str, Any]) -> None:
    state = synced["state"]
    record = flow_run_record(
        state.state_details.flow_run_id, final_log="Finished in state Completed"
    )
    summary = next(a for a in record.artifacts if a.key == ARTIFACT_KEY).data
    for table in TABLES:
        (manifest,) = synced["manifests"][table]
        counts, examples = manifest.quality["counts"], manifest.quality["examples"]
        levels = {"data quality": logging.WARNING, "derived values": logging.INFO}
        logged = {
            kind: [log for log in record.logs if log.message.startswith(f"{table} {kind}:")]
            for kind in levels
        }
        row = next(line for line in summary.splitlines() if line.startswith(f"| {table} |"))
        assert "| Completed |" in row
        for counter, count in counts.items():
            derived = counter.endswith("_derived")
            kind = "derived values" if derived else "data quality"
            (line,) = logged[kind]  # once per table and kind
            assert line.level == levels[kind]
            shown_ids = ", ".join(map(str, examples[counter]))
            assert f"{counter}={count} (e.g. ids {shown_ids})" in line.message
            assert (
                f"| {table} | {counter} | {'derived' if derived else 'anomaly'} | "
                f"{count:,} | {shown_ids} |"
            ) in summary
    audit = query(
        synced["settings"],
        "SELECT table_name, quality, zero_dates_nulled, "
        f"orphan_rows FROM {synced['settings'].quoted_table_ref('ph_sync_runs')}",
    )
    for row in audit:
        (manifest,) = synced["manifests"][row["table_name"]]
        assert json.loads(row["quality"]) == manifest.quality
        counts = manifest.quality["counts"]
        assert row["zero_dates_nulled"] == sum(
            v for k, v in counts.items() if k.startswith("zero_date_nulled")
        )
        assert row["orphan_rows"] == sum(v for k, v in counts.items() if k.startswith("orphan_"))


@pytest.mark.parametrize(
    ("preferences", "selections", "display", "problem"),
    [
        ('["\\ud800x", "Kew"]', None, None, "unreadable"),  # parses, but has no UTF-8 form
        ("[" * 100_000 + "]" * 100_000, '["Kew"]', "Kew", "unreadable"),  # RecursionError
        ("[" * 200 + '"Kew"' + "]" * 200, None, "Kew", "irregular"),
        ('"Fitzroy"', "42", "Fitzroy", "irregular"),
        ("", "   ", None, "unreadable"),
        ("[]", "{}", None, "irregular"),
        ("null", "null", None, ""),
        ('["Caf\\u00e9", "CAFÉ", " café "]', None, "Café", ""),
    ],
)
def test_location_json_never_crashes_the_export(
    preferences: str, selections: str | None, display: str | None, problem: str
) -> None:
    assert location_display(preferences, selections) == (display, problem)
