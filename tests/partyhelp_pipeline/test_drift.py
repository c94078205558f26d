"""Schema drift in the source, made for real with ALTER TABLE, under the real flow.

- an added column changes nothing;
- a renamed or dropped column that a spec reads fails the run before anything is written
  (no part, no manifest, no ``ph_*`` table replaced), naming the table and the column;
- a widened type either arrives exactly (INT -> BIGINT UNSIGNED within int64,
  DECIMAL(10,2) -> DECIMAL(12,2)) or fails clearly, never silently truncated: a value above
  2^63 - 1 names table, column and row id; DECIMAL(12,4), DECIMAL(20,2), DATE -> DATETIME,
  TIMESTAMP -> DATETIME and INT -> VARCHAR fail before anything is written; a DECIMAL read
  as FLOAT64 (match_score) may widen its scale.

Each changed schema lives in a database of its own (built in about a second), synced into
one shared dataset whose tables were published by a baseline run, so "nothing replaced"
is checked against real, earlier tables.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from partyhelp_pipeline import drift
from partyhelp_pipeline import manifest as mf
from partyhelp_pipeline.clients import bigquery_client
from partyhelp_pipeline.spec import TABLES, Column, Join, QueryInput, TableSpec
from partyhelp_pipeline.spec.sql import flattening_query, totals_query
from tests.faultkit import (
    Source,
    assert_table_equals_source,
    assert_totals_equal_source,
    environment,
    manifests,
    new_target,
    object_names,
    query,
    source_database,
    sync_on,
    table_states,
)

pytestmark = pytest.mark.usefixtures("stack", "emulators")  # emulators: conftest.py

BASELINE_DAY = dt.date(2026, 10, 1)
# One chunk per table whatever the ids (the edge-case rows sit at ids above 900,000,000).
ONE_CHUNK = {"PARTYHELP_CHUNK_ROWS": "2000000000"}
INT64_MAX = 2**63 - 1


@pytest.fixture(scope="module")
def target(stack: None) -> Iterator[dict[str, str]]:
    """A dataset and bucket whose five tables and view were published by a baseline run."""
    with source_database("ph_drift", scale=0.01, seed=17) as base:
        env = new_target(base, "drift", **ONE_CHUNK)
        with environment(env):
            state = sync_on(BASELINE_DAY)
        assert state.is_completed(), state.message
        yield env


@pytest.fixture()
def drifted(target: dict[str, str]) -> Iterator[tuple[Source, Any]]:
    """A fresh source database (to ALTER), synced into the target: (source, settings)."""
    with source_database("ph_drifted", scale=0.01, seed=17) as source:
        env = {
            **target,
            "PARTYHELP_MYSQL_DATABASE": source.database,
            "PARTYHELP_MYSQL_USER": source.user,
        }
        with environment(env) as settings:
            yield source, settings


def _sync(day: dt.date, tables: list[str] | None = None) -> Any:
    return sync_on(day, tables=tables)


def _sync_equals_source(source: Source, settings: Any, day: dt.date, tables: list[str]) -> None:
    """The sync of ``tables`` completes, and each equals its source, cell by cell."""
    state = _sync(day, tables)
    assert state.is_completed(), state.message
    for table in tables:
        assert_table_equals_source(settings, source, table, day)


def _assert_nothing_written(settings: Any, day: dt.date, before: dict[str, Any]) -> None:
    assert not object_names(settings, mf.date_folder(settings.gcs_prefix, day) + "/")
    assert table_states(settings) == before


# A spec of the test's own, so that no column added to a reporting table changes it: every
# wire form, a derived column and its inputs, PII read only when asked, a join.
EVERY_WIRE_FORM = TableSpec(
    name="ph_wire_forms",
    description="Every wire form, a derivation, PII and a join.",
    source_table="leads",
    alias="l",
    joins=(Join("occasion_types", "ot", "key", "l.occasion_type"),),
    primary_key="lead_id",
    columns=(
        Column("lead_id", "INT64", "Key.", "l.id", mode="REQUIRED"),
        Column("occasion_type", "STRING", "Text.", "l.occasion_type"),
        Column("occasion_label", "STRING", "Derived.", "ot.label", derive="occasion_label"),
        Column("preferred_date", "DATE", "Date.", "l.preferred_date"),
        Column("created_at", "TIMESTAMP", "Timestamp.", "l.created_at"),
        Column("base_price", "NUMERIC", "Money.", "l.base_price"),
        Column("guest_share", "FLOAT64", "Double.", "l.guest_count"),
        Column("email_sha256", "STRING", "PII hash.", derive="hmac_email", pii=True),
    ),
    inputs=(QueryInput("email", "l.email", pii=True),),
)
# Its query, written out: DATE as YYYYMMDD, TIMESTAMP as epoch microseconds, NUMERIC as
# cents, FLOAT64 as a double, the others as they are.
EVERY_WIRE_FORM_QUERY = """\
-- ph_wire_forms: Every wire form, a derivation, PII and a join.
SELECT
    `l`.`id`                                                          AS `lead_id`,
    `l`.`occasion_type`                                               AS `occasion_type`,
    `ot`.`label`                                                      AS `occasion_label`,
    `l`.`preferred_date` + 0                                          AS `preferred_date`,
    CAST(UNIX_TIMESTAMP(`l`.`created_at`) * 1000000 AS SIGNED)        AS `created_at`,
    CAST(`l`.`base_price` * 100 AS SIGNED)                            AS `base_price`,
    `l`.`guest_count` + 0E0                                           AS `guest_share`,
    IF(%(include_pii)s, `l`.`email`, NULL)                            AS `email`
FROM `leads` AS `l`
LEFT JOIN `occasion_types` AS `ot` ON `ot`.`key` = `l`.`occasion_type`
WHERE `l`.`id` BETWEEN %(first_id)s AND %(last_id)s
ORDER BY `l`.`id`
"""


def test_the_drift_check_knows_the_wire_form_of_every_select_item() -> None:
    """The query reads each source column in one wire form, and the type check knows it."""
    assert flattening_query(EVERY_WIRE_FORM) == EVERY_WIRE_FORM_QUERY
    assert EVERY_WIRE_FORM.source_wire_types == {
        ("leads", "id"): "INT64",
        ("leads", "occasion_type"): "STRING",
        ("occasion_types", "label"): "STRING",
        ("leads", "preferred_date"): "DATE",
        ("leads", "created_at"): "TIMESTAMP",
        ("leads", "base_price"): "NUMERIC",
        ("leads", "guest_count"): "FLOAT64",
        ("leads", "email"): "STRING",
    }
    for spec in TABLES.values():  # every select item of every table, each its own column
        for column in spec.query_plan:
            assert spec.source_wire_types[spec.source_column(column.source)] == column.wire_type
        assert len(spec.source_wire_types) == len(spec.query_plan), spec.name
        assert set(spec.source_wire_types) <= spec.source_columns


def test_added_columns_change_nothing(drifted: tuple[Source, Any]) -> None:
    source, settings = drifted
    day = dt.date(2026, 10, 2)
    source.sql("ALTER TABLE leads ADD COLUMN utm_source VARCHAR(64) NULL FIRST")
    source.sql(
        "ALTER TABLE venues ADD COLUMN abn CHAR(11) NULL AFTER id, "
        "ADD COLUMN credit_limit DECIMAL(12,4) NULL"
    )
    source.sql(
        "ALTER TABLE credit_transactions ADD COLUMN currency CHAR(3) NOT NULL "
        "DEFAULT 'AUD' AFTER amount"
    )
    source.sql("UPDATE leads SET utm_source = 'google' ORDER BY id LIMIT 5")
    source.sql("UPDATE venues SET abn = '12345678901', credit_limit = 1.2345")
    tables = ["ph_leads", "ph_venues", "ph_credit_transactions", "ph_lead_purchases"]
    _sync_equals_source(source, settings, day, tables)
    client = bigquery_client(settings)
    for table in tables:
        schema = [f.name for f in client.get_table(settings.table_ref(table)).schema]
        assert schema == [c.name for c in TABLES[table].output_columns()]
        (manifest,) = manifests(settings, day, table)
        assert manifest.bigquery_schema == TABLES[table].bigquery_schema()


def test_renamed_and_dropped_columns_fail_before_anything_is_written(
    drifted: tuple[Source, Any],
) -> None:
    """Three columns the specs read go (renamed, dropped, renamed in a joined table): the
    run fails before any export, naming every table and column it could not read."""
    source, settings = drifted
    day = dt.date(2026, 10, 3)
    before = table_states(settings)
    assert set(TABLES) <= set(before)
    source.sql("ALTER TABLE leads RENAME COLUMN guest_count TO guests")
    source.sql("ALTER TABLE credit_transactions DROP COLUMN admin_note")
    source.sql("ALTER TABLE areas RENAME COLUMN name TO area_name")
    state = _sync(day)
    assert state.is_failed()
    for named in (
        "ph_leads: source column leads.guest_count is missing",
        "ph_venues: source column areas.name is missing",
        "ph_lead_purchases: source column areas.name, leads.guest_count is missing",
        "ph_credit_transactions: source column credit_transactions.admin_note is missing",
    ):
        assert named in state.message
    assert "ph_lead_matches" not in state.message
    _assert_nothing_written(settings, day, before)


def test_types_the_export_cannot_carry_exactly_fail_before_anything_is_written(
    drifted: tuple[Source, Any],
) -> None:
    """DECIMAL(12,4) (would round), DECIMAL(20,2) (beyond int64 cents), DATE -> DATETIME and
    TIMESTAMP -> DATETIME (would arrive as NULL), INT -> VARCHAR: one run, all named."""
    source, settings = drifted
    day = dt.date(2026, 10, 4)
    before = table_states(settings)
    source.sql("ALTER TABLE credit_transactions MODIFY amount DECIMAL(12,4) NOT NULL")
    source.sql("ALTER TABLE venues MODIFY credit_balance DECIMAL(20,2) NOT NULL")
    source.sql(
        "ALTER TABLE leads MODIFY preferred_date DATETIME NULL, MODIFY guest_count VARCHAR(16) NULL"
    )
    source.sql("ALTER TABLE lead_matches MODIFY notified_at DATETIME NULL")
    state = _sync(day)
    assert state.is_failed()
    for named in (
        "ph_credit_transactions: source column credit_transactions.amount is DECIMAL(12,4)",
        "ph_venues: source column venues.credit_balance is DECIMAL(20,2)",
        "ph_leads: source column leads.guest_count is now VARCHAR",
        "ph_leads: source column leads.preferred_date is now DATETIME",
        "ph_lead_purchases: source column leads.preferred_date is now DATETIME",
        "ph_lead_matches: source column lead_matches.notified_at is now DATETIME",
    ):
        assert named in state.message
    _assert_nothing_written(settings, day, before)


def test_int_widened_to_bigint_unsigned_arrives_exactly_or_fails_naming_the_row(
    drifted: tuple[Source, Any],
) -> None:
    source, settings = drifted
    tables = ["ph_leads", "ph_lead_purchases"]
    source.sql("ALTER TABLE leads MODIFY guest_count BIGINT UNSIGNED NULL")
    big, biggest = source.sql(
        "SELECT id FROM leads WHERE id IN (SELECT lead_id FROM lead_purchases) ORDER BY id LIMIT 2"
    )
    source.sql("UPDATE leads SET guest_count = %s WHERE id = %s", (2**40, big[0]))
    source.sql("UPDATE leads SET guest_count = %s WHERE id = %s", (INT64_MAX, biggest[0]))
    day = dt.date(2026, 10, 5)
    _sync_equals_source(source, settings, day, tables)
    counts = {
        r["lead_id"]: r["guest_count"]
        for r in query(
            settings,
            f"SELECT lead_id, guest_count FROM {settings.quoted_table_ref('ph_leads')} "
            f"WHERE lead_id IN ({big[0]}, {biggest[0]})",
        )
    }
    assert counts == {big[0]: 2**40, biggest[0]: INT64_MAX}

    before = table_states(settings)
    source.sql("UPDATE leads SET guest_count = %s WHERE id = %s", (INT64_MAX + 1, big[0]))
    purchase = source.scalar("SELECT MIN(id) FROM lead_purchases WHERE lead_id = %s", (big[0],))
    day = dt.date(2026, 10, 6)
    state = _sync(day, tables)
    assert state.is_failed()
    assert (
        f"ph_leads: column guest_count of row id {big[0]} holds {INT64_MAX + 1}, which "
        "does not fit a signed 64-bit integer"
    ) in state.message
    assert f"ph_lead_purchases: column guest_count of row id {purchase} holds" in state.message
    assert table_states(settings)["ph_leads"] == before["ph_leads"]
    assert table_states(settings)["ph_lead_purchases"] == before["ph_lead_purchases"]
    assert not manifests(settings, day, "ph_leads")
    assert not manifests(settings, day, "ph_lead_purchases")


def test_decimal_widened_to_12_2_arrives_exactly(drifted: tuple[Source, Any]) -> None:
    source, settings = drifted
    day = dt.date(2026, 10, 7)
    source.sql("ALTER TABLE lead_purchases MODIFY amount_paid DECIMAL(12,2) NOT NULL")
    source.sql(
        "ALTER TABLE credit_transactions MODIFY amount DECIMAL(12,2) NOT NULL, "
        "MODIFY balance_after DECIMAL(12,2) NOT NULL"
    )
    first, second, third = (
        row[0] for row in source.sql("SELECT id FROM lead_purchases ORDER BY id LIMIT 3")
    )
    values = {
        first: Decimal("9999999999.99"),
        second: Decimal("-9999999999.99"),
        third: Decimal("1234567890.01"),
    }
    for purchase, amount in values.items():
        source.sql("UPDATE lead_purchases SET amount_paid = %s WHERE id = %s", (amount, purchase))
    source.sql(
        "UPDATE credit_transactions SET amount = 9999999999.99, "
        "balance_after = -9999999999.99 ORDER BY id LIMIT 1"
    )
    tables = ["ph_lead_purchases", "ph_credit_transactions"]
    _sync_equals_source(source, settings, day, tables)
    loaded = {
        r["lead_purchase_id"]: r["amount_paid"]
        for r in query(
            settings,
            f"SELECT lead_purchase_id, amount_paid FROM "
            f"{settings.quoted_table_ref('ph_lead_purchases')} "
            f"WHERE lead_purchase_id IN ({first}, {second}, {third})",
        )
    }
    assert loaded == values
    for table in tables:  # every money sum to the cent, the widened columns included
        assert_totals_equal_source(settings, source, table)


def test_a_float64_column_widened_to_more_decimals_still_arrives(
    drifted: tuple[Source, Any],
) -> None:
    """match_score is FLOAT64 by contract: a DECIMAL(5,2) -> DECIMAL(7,3) needs no refusal
    (the exact-cents rule is for money); its values arrive as the doubles they are."""
    source, settings = drifted
    day = dt.date(2026, 10, 12)
    source.sql("ALTER TABLE lead_matches MODIFY match_score DECIMAL(7,3) NULL")
    source.sql("UPDATE lead_matches SET match_score = 1234.567 ORDER BY id LIMIT 1")
    _sync_equals_source(source, settings, day, ["ph_lead_matches"])
    assert query(
        settings,
        f"SELECT MAX(match_score) AS top FROM {settings.quoted_table_ref('ph_lead_matches')}",
    ) == [{"top": 1234.567}]


@pytest.mark.parametrize("collation", ["utf8mb4_general_ci", "utf8mb4_bin"])
def test_a_join_of_mixed_collations_fails_naming_both_before_anything_is_written(
    drifted: tuple[Source, Any], collation: str
) -> None:
    """occasion_types.key in another collation than leads.occasion_type (on MySQL 8 a table
    created without a collation gets utf8mb4_0900_ai_ci; Laravel's are utf8mb4_unicode_ci):
    the drift check names both columns and collations, in one line, before any export."""
    source, settings = drifted
    day = dt.date(2026, 10, 13)
    before = table_states(settings)
    source.sql(
        f"ALTER TABLE occasion_types MODIFY `key` VARCHAR(64) CHARACTER SET utf8mb4 "
        f"COLLATE {collation} NOT NULL"
    )
    assert (
        source.scalar(
            "SELECT COLLATION_NAME FROM information_schema.COLUMNS WHERE "
            "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'leads' AND "
            "COLUMN_NAME = 'occasion_type'"
        )
        == "utf8mb4_unicode_ci"
    )
    state = _sync(day)
    assert state.is_failed()
    message = str(state.message)
    for table in ("ph_leads", "ph_lead_purchases"):
        assert (
            f"{table}: the join occasion_types.key ({collation}) = leads.occasion_type "
            "(utf8mb4_unicode_ci) mixes collations, which MySQL refuses (error 1267"
        ) in message
    assert "\n" not in drift_message(settings)
    _assert_nothing_written(settings, day, before)


def drift_message(settings: Any) -> str:
    """The drift check's own error, as the run reports it."""
    from partyhelp_pipeline.errors import SchemaDriftError

    with pytest.raises(SchemaDriftError) as failure:
        drift.check_source_schema(settings.mysql, list(TABLES.values()))
    return str(failure.value)


@pytest.mark.parametrize(
    ("alter", "message"),
    [
        (
            "ALTER TABLE leads MODIFY preferred_date DATETIME NULL",
            "ph_leads: source column leads.preferred_date is now DATETIME",
        ),
        (
            "ALTER TABLE leads MODIFY base_price DECIMAL(10,3) NULL",
            "ph_leads: source column leads.base_price is DECIMAL(10,3)",
        ),
    ],
    ids=["date-to-datetime", "decimal-10-3"],
)
def test_a_migration_mid_run_fails_the_chunk_before_it_writes(
    drifted: tuple[Source, Any], alter: str, message: str
) -> None:
    """A migration deployed after the run's schema check, before a chunk's export: the
    plain functions run in the flow's order with the ALTER in between. Without the chunk's
    own check every date became NULL (counted as zero dates) and prices were rounded."""
    from partyhelp_pipeline import export
    from partyhelp_pipeline.errors import SchemaDriftError
    from partyhelp_pipeline.export_target import ExportTarget

    source, settings = drifted
    spec, day = TABLES["ph_leads"], dt.date(2026, 10, 8)
    drift.check_source_schema(settings.mysql, [spec])
    target = ExportTarget.from_settings(settings)
    plan = export.plan_export(target, spec, day, None)
    source.sql(alter)
    with pytest.raises(SchemaDriftError, match=re.escape(message)):
        export.export_chunk(target, spec, plan, 0)
    assert not object_names(settings, mf.date_folder(settings.gcs_prefix, day) + "/")


def test_a_migration_after_a_chunk_snapshot_began_fails_its_reads_and_is_retried(
    drifted: tuple[Source, Any],
) -> None:
    """MariaDB refuses to read a table altered after the snapshot began (error 1412), which
    the export reports as transient: the retry takes a new snapshot and checks again."""
    from partyhelp_pipeline.errors import export_source_error, is_transient
    from partyhelp_pipeline.source import fetch_one, snapshot

    source, settings = drifted
    spec = TABLES["ph_leads"]
    with snapshot(settings.mysql) as connection:
        source.sql("ALTER TABLE leads MODIFY preferred_date DATETIME NULL")
        with pytest.raises(Exception) as failure:
            fetch_one(
                connection, totals_query(spec), {"first_id": 0, "last_id": 2**62, "include_pii": 0}
            )
    assert failure.value.args[0] == 1412
    wrapped = export_source_error(failure.value, spec.name)
    assert is_transient(wrapped)
    assert str(wrapped).startswith("ph_leads: MySQL error 1412 while exporting")
