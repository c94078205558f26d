"""The specs honour the users' contract, and every schema is derived from them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from partyhelp_pipeline.avro_encoding import table_schema
from partyhelp_pipeline.spec import (
    LOOKUP_KEY,
    SALES_BILLING_SUMMARY,
    TABLES,
    Column,
    TableSpec,
    select_tables,
)
from partyhelp_pipeline.spec.sql import flattening_query, lookup_query, totals_query
from tests.conftest import ROOT, admin_connection, create_source_database, drop_database

# The users' proposal, the contract the tables honour: a verbatim copy in the repository, so
# that a clean clone (CI) checks the contract too. Where the shared seed sits beside the
# repository, the copy must equal it.
PROPOSAL = ROOT / "tests" / "contract" / "bigquery-data-sync-proposal.md"
SHARED_PROPOSAL = ROOT.parent / "shared" / "seed" / PROPOSAL.name
# What BigQuery must see in the Avro files for each column type (with logical types on).
AVRO_LOGICAL = {
    "INT64": "long",
    "STRING": "string",
    "FLOAT64": "double",
    "DATE": {"type": "int", "logicalType": "date"},
    "TIMESTAMP": {"type": "long", "logicalType": "timestamp-micros"},
    "NUMERIC": {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 2},
}
# The contract's money: the proposal's FLOAT64 money columns, NUMERIC by the users' decision
# (exact to the cent, README "The tables"). Written here, independently of the specs, on
# purpose: every other test takes the money columns from ``spec.money_columns``, and this
# list is what holds those to the contract.
MONEY = {
    "ph_leads": ("base_price", "current_price"),
    "ph_venues": ("credit_balance",),
    "ph_lead_purchases": ("amount_paid",),
    "ph_credit_transactions": ("amount", "balance_after"),
    "ph_lead_matches": (),
}


def proposal_tables() -> dict[str, dict[str, str]]:
    """``{table: {column: type}}`` from the proposal's §3 tables."""
    text = PROPOSAL.read_text(encoding="utf-8")
    tables: dict[str, dict[str, str]] = {}
    current = None
    for line in text.splitlines():
        heading = re.match(r"#### \*\*(ph_\w+)\*\*", line)
        if heading:
            current = heading.group(1)
            tables[current] = {}
            continue
        if line.startswith("### 3.4"):
            current = None
        row = re.match(r"\|\s*(\w+)\s*\|\s*(INT64|STRING|DATE|TIMESTAMP|FLOAT64)\s*\|", line)
        if current and row:
            tables[current][row.group(1)] = row.group(2)
    return tables


def test_the_contract_copy_is_the_shared_proposal() -> None:
    if SHARED_PROPOSAL.exists():  # beside a clean clone (CI) it is not: the copy stands alone
        assert PROPOSAL.read_bytes() == SHARED_PROPOSAL.read_bytes(), (
            f"{PROPOSAL} differs from {SHARED_PROPOSAL}: copy the proposal again"
        )


def test_every_proposal_column_is_in_its_table_with_its_type() -> None:
    proposal = proposal_tables()
    assert set(proposal) == set(TABLES)
    for table, columns in proposal.items():
        spec = {c.name: c.type for c in TABLES[table].output_columns()}
        for column, proposed in columns.items():
            assert column in spec, f"{table}.{column} missing"
            expected = "NUMERIC" if column in MONEY[table] else proposed
            assert spec[column] == expected, f"{table}.{column}: {spec[column]} != {expected}"
    # the optional location_display and the kept guest_count_display
    assert {"location_display", "guest_count_display"} <= set(spec_names("ph_leads"))


def spec_names(table: str) -> list[str]:
    return [c.name for c in TABLES[table].output_columns()]


def test_the_money_columns_are_the_contracts() -> None:
    """Exactly the contract's money columns are NUMERIC: the totals queries, the
    reconciliation and the tests that sum money all take them from ``money_columns``."""
    assert {
        name: tuple(c.name for c in spec.money_columns) for name, spec in TABLES.items()
    } == MONEY
    for spec in TABLES.values():
        numeric = [c.name for c in spec.output_columns(include_pii=True) if c.type == "NUMERIC"]
        assert numeric == list(MONEY[spec.name]), spec.name


def test_view_columns_are_the_proposals() -> None:
    text = PROPOSAL.read_text(encoding="utf-8")
    section = text.split("### 3.4", 1)[1].split("No extra tables", 1)[0]
    listed = re.findall(r"`(\w+)`", section.split("Suggested columns", 1)[1])
    listed = [name for name in listed if name != "ph_lead_purchases"]  # "(all from ...)"
    assert sorted(SALES_BILLING_SUMMARY.column_names) == sorted(listed)


def test_no_pii_by_default_and_hashes_only_when_asked() -> None:
    pii = {
        "first_name",
        "last_name",
        "email",
        "phone",
        "contact_name",
        "contact_email",
        "contact_phone",
    }
    for spec in TABLES.values():
        assert not pii & set(spec_names(spec.name))
    with_pii = [c.name for c in TABLES["ph_leads"].output_columns(include_pii=True)]
    assert with_pii[-2:] == ["email_sha256", "phone_sha256"]


def test_schemas_are_derived_from_one_column_list() -> None:
    for spec in TABLES.values():
        avro = table_schema(spec)
        bq = spec.bigquery_schema()
        names = spec_names(spec.name)
        assert [f["name"] for f in avro["fields"]] == names == [f["name"] for f in bq]
        for field, column in zip(avro["fields"], spec.output_columns(), strict=True):
            base = field["type"][1] if isinstance(field["type"], list) else field["type"]
            assert base == AVRO_LOGICAL[column.type]
            assert isinstance(field["type"], list) == column.nullable
            assert field["doc"] == column.description != ""


def test_select_tables_refuses_unknown_names() -> None:
    assert [s.name for s in select_tables(["ph_venues", "ph_venues"])] == ["ph_venues"]
    with pytest.raises(ValueError, match="unknown table 'ph_nope'"):
        select_tables(["ph_nope"])


def test_source_columns_come_from_the_aliases_of_the_from_clause() -> None:
    spec = TABLES["ph_lead_purchases"]
    assert spec.source_column("ot.label") == ("occasion_types", "label")
    # join keys are read too (the drift check must find them), but in no wire form
    assert {
        ("occasion_types", "key"),
        ("leads", "occasion_type"),
        ("areas", "id"),
        ("venues", "area_id"),
    } <= spec.source_columns
    assert ("occasion_types", "key") not in spec.source_wire_types
    with pytest.raises(ValueError, match="unknown alias"):
        TableSpec(
            "t",
            "d",
            "leads",
            "l",
            "id",
            (Column("id", "INT64", "k", "l.id"), Column("x", "STRING", "x", "zz.x")),
        )
    with pytest.raises(ValueError, match="money must come from"):  # totals read no joins
        TableSpec(
            "t",
            "d",
            "venues",
            "v",
            "id",
            (Column("id", "INT64", "k", "v.id"), Column("m", "NUMERIC", "m", "a.x")),
            joins=TABLES["ph_venues"].joins,
        )


def test_sql_files_are_generated_from_the_specs() -> None:
    from scripts.generate_docs import render_sql_files

    generated = render_sql_files()
    # + ph_sales_billing_summary, ph_sales_by_financial_period, ph_sync_freshness, and
    # ph_sync_health; a query per lookup
    lookups = sum(len(spec.lookups) for spec in TABLES.values())
    assert lookups == 4
    assert len(generated) == 2 * len(TABLES) + 4 + lookups
    for path, text in generated.items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path} is stale: run python -m scripts.generate_docs"
        )
    on_disk = {
        p for folder in ("source", "bigquery") for p in (ROOT / "sql" / folder).rglob("*.sql")
    }
    assert on_disk <= set(generated), "a query that no spec generates"


@pytest.fixture(scope="module")
def empty_source(stack: None) -> Iterator[str]:
    name = create_source_database("ph_spec")
    yield name
    drop_database(name)


@pytest.mark.parametrize("table", list(TABLES))
def test_queries_return_exactly_the_columns_the_spec_needs(empty_source: str, table: str) -> None:
    spec = TABLES[table]
    params = {"first_id": 0, "last_id": 10, "include_pii": 0}
    with admin_connection(empty_source) as connection, connection.cursor() as cursor:
        cursor.execute(flattening_query(spec), params)
        returned = [d[0] for d in cursor.description]
        for lookup in spec.lookups:
            cursor.execute(lookup_query(spec, lookup), params)
            assert cursor.description[0][0] == LOOKUP_KEY
            returned += [d[0] for d in cursor.description[1:]]
        cursor.execute(flattening_query(spec, lookups_in_arrow=False), params)
        every_join_in_sql = [d[0] for d in cursor.description]
        cursor.execute(totals_query(spec), {"first_id": 0, "last_id": 10})
        totals = [d[0] for d in cursor.description]
    assert sorted(returned) == sorted(spec.query_columns)
    assert every_join_in_sql == list(spec.query_columns)
    freshness = ["freshness_newest", "snapshot_at"] if spec.freshness else []
    assert totals == ["row_count", *[c.name for c in spec.money_columns], *freshness]
    for name, _column in spec.source_columns:
        assert name in {
            "leads",
            "venues",
            "areas",
            "occasion_types",
            "lead_purchases",
            "credit_transactions",
            "lead_matches",
        }


def test_sql_files_bind_values_and_never_format_them() -> None:
    for path in Path(ROOT / "sql" / "source").rglob("*.sql"):
        text = path.read_text()
        assert "{" not in text, path  # no str.format placeholders in source queries
        if path.parent.name == "lookups":  # a lookup reads its whole (small) table
            assert "%(first_id)s" not in text and "BETWEEN" not in text, path
        else:
            assert "%(first_id)s" in text and "%(last_id)s" in text, path


def test_table_reference_is_generated_from_the_specs() -> None:
    from scripts.generate_docs import OUTPUT, render

    assert OUTPUT.read_text(encoding="utf-8") == render(), "run python -m scripts.generate_docs"
