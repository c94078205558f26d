"""The real flow on the real local stack, compared cell by cell with the source."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal

import fastavro
import pytest

from partyhelp_pipeline import manifest as mf
from partyhelp_pipeline.avro_encoding import table_schema
from partyhelp_pipeline.clients import bigquery_client, storage_client
from partyhelp_pipeline.settings import load_settings
from partyhelp_pipeline.spec import SALES_BILLING_SUMMARY, TABLES
from tests.conftest import ROOT, STANDARD_SYNC_DATE, admin_connection
from tests.faultkit import clock_at, env_vars, flow_run_record
from tests.oracle import bigquery_rows, diff_tables, expected_tables

SYNC_DATE = STANDARD_SYNC_DATE
pytestmark = pytest.mark.smoke  # the quick mode's one end-to-end sync (scripts/test.sh --quick)


@pytest.fixture(scope="module")
def synced(standard_sync: dict) -> Iterator[dict]:
    """The worker's one full sync of the edge-case database (conftest.py, standard_sync),
    shared read-only by the assertions below, with its settings in the environment."""
    with env_vars(standard_sync["env"]):
        yield standard_sync


def test_run_completes(synced: dict) -> None:
    state = synced["state"]
    assert state.is_completed(), state.message
    summary = state.result()
    assert set(summary["tables"]) == set(TABLES)


@pytest.mark.parametrize("table", list(TABLES))
def test_table_equals_source_cell_by_cell(synced: dict, source_db: dict, table: str) -> None:
    settings = synced["settings"]
    with admin_connection(source_db["database"]) as connection:
        expected = expected_tables(connection, SYNC_DATE)[table]
    actual = bigquery_rows(
        bigquery_client(settings), settings.table_ref(table), TABLES[table].primary_key
    )
    assert len(actual) == len(expected) > 0
    assert diff_tables(expected, actual) == []


def test_a_first_run_on_a_new_dataset_creates_it_once_and_retries_nothing(synced: dict) -> None:
    """The dataset is prepared once before the loads: no load races to create it, so a
    new user's first run shows no failed task and no retry."""
    record = flow_run_record(
        synced["state"].state_details.flow_run_id, final_log="Finished in state Completed"
    )
    assert record.task("prepare-dataset").state_name == "Completed"
    loads = [t for t in record.task_runs if t.name.startswith("load-")]
    assert len(loads) == len(TABLES)
    assert all(t.run_count == 1 and t.state_name == "Completed" for t in record.task_runs), sorted(
        (t.name, t.run_count, t.state_name) for t in record.task_runs
    )
    assert not [m for m in record.messages() if "Task run failed" in m or "Retrying" in m]


def test_money_sums_match_to_the_cent(synced: dict, source_db: dict) -> None:
    """Each money column (NUMERIC in its spec; tests/partyhelp_pipeline/spec/test_tables.py
    holds the specs to the contract's list) sums in BigQuery to its source column's sum, to
    the cent."""
    settings = synced["settings"]
    client = bigquery_client(settings)
    sources = {
        (spec.name, column.name): f"SELECT SUM(`{column.name}`) FROM `{spec.source_table}`"
        for spec in TABLES.values()
        for column in spec.money_columns
    }
    assert sources
    with admin_connection(source_db["database"]) as connection, connection.cursor() as cursor:
        for (table, column), sql in sources.items():
            cursor.execute(sql)
            source_sum = cursor.fetchone()[0]
            sql = f"SELECT SUM({column}) AS s FROM {settings.quoted_table_ref(table)}"
            bq_sum = next(iter(client.query(sql).result()))["s"]
            assert Decimal(bq_sum) == Decimal(source_sum), (table, column)


def test_money_columns_are_numeric_and_documented(synced: dict) -> None:
    settings = synced["settings"]
    client = bigquery_client(settings)
    for spec in TABLES.values():
        table = client.get_table(settings.table_ref(spec.name))
        types = {f.name: f.field_type for f in table.schema}
        for column in spec.output_columns():
            expected_type = {"INT64": "INTEGER", "FLOAT64": "FLOAT"}.get(column.type, column.type)
            assert types[column.name] == expected_type, (spec.name, column.name)
        descriptions = {f.name: f.description for f in table.schema}
        assert all(descriptions[c.name] == c.description for c in spec.output_columns())
        assert table.description == spec.description


def test_view_has_the_billing_columns_and_every_purchase(synced: dict, source_db: dict) -> None:
    settings = synced["settings"]
    client = bigquery_client(settings)
    view = client.get_table(settings.table_ref(SALES_BILLING_SUMMARY.name))
    assert view.table_type == "VIEW"
    assert [f.name for f in view.schema] == list(SALES_BILLING_SUMMARY.column_names)
    count = next(
        iter(
            client.query(
                f"SELECT COUNT(*) AS n, SUM(amount_paid) AS s FROM "
                f"{settings.quoted_table_ref(SALES_BILLING_SUMMARY.name)}"
            ).result()
        )
    )
    with admin_connection(source_db["database"]) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*), SUM(amount_paid) FROM lead_purchases")
        n, total = cursor.fetchone()
    assert (count["n"], Decimal(count["s"])) == (n, Decimal(total))


def test_exports_are_kept_with_manifests_in_date_folders(synced: dict) -> None:
    settings = synced["settings"]
    client = storage_client(settings)
    for table in TABLES:
        manifest = mf.find_latest_manifest(
            client, settings.gcs_bucket, settings.gcs_prefix, SYNC_DATE, table
        )
        folder = f"gs://{settings.gcs_bucket}/exports/sync_date=2026-11-25/{table}/"
        assert manifest.uri.startswith(folder) and manifest.uri.endswith("/manifest.json")
        assert manifest.flow_run_id == str(synced["state"].state_details.flow_run_id)
        assert manifest.avro_schema == table_schema(TABLES[table])
        assert sum(p.rows for p in manifest.parts) == manifest.rows
        assert all(p.uri.startswith(folder) and p.uri.endswith(".avro") for p in manifest.parts)
        mf.verify_parts(client, manifest)


def test_large_tables_roll_into_parts_with_logical_types(synced: dict) -> None:
    settings = synced["settings"]
    client = storage_client(settings)
    manifest = mf.find_latest_manifest(
        client, settings.gcs_bucket, settings.gcs_prefix, SYNC_DATE, "ph_credit_transactions"
    )
    assert len(manifest.parts) > 1  # PARTYHELP_PART_MAX_BYTES is 8 KiB in tests
    bucket, name = mf.split_gs_uri(manifest.parts[0].uri)
    data = client.bucket(bucket).blob(name).download_as_bytes()
    import io

    reader = fastavro.reader(io.BytesIO(data))
    assert reader.codec == "deflate"
    fields = {f["name"]: f["type"] for f in reader.writer_schema["fields"]}
    assert fields["amount"][1]["logicalType"] == "decimal"
    assert fields["created_at"][1]["logicalType"] == "timestamp-micros"
    assert fields["sync_date"]["logicalType"] == "date"
    rows = list(reader)
    assert len(rows) == manifest.parts[0].rows
    assert all(r["sync_date"] == SYNC_DATE for r in rows)


def test_legacy_values_are_counted(synced: dict) -> None:
    settings = synced["settings"]
    client = storage_client(settings)
    counts = {}
    for table in TABLES:
        manifest = mf.find_latest_manifest(
            client, settings.gcs_bucket, settings.gcs_prefix, SYNC_DATE, table
        )
        counts[table] = manifest.quality["counts"]
    assert counts["ph_leads"]["zero_date_nulled:preferred_date"] > 0
    assert counts["ph_leads"]["json_unreadable"] > 0
    assert counts["ph_leads"]["occasion_label_derived"] > 0
    assert counts["ph_lead_purchases"]["orphan_lead"] > 0
    assert counts["ph_lead_purchases"]["orphan_venue"] > 0
    assert counts["ph_credit_transactions"]["zero_date_nulled:created_at"] > 0


def test_audit_rows_and_artifact(synced: dict) -> None:
    settings = synced["settings"]
    run_id = str(synced["state"].state_details.flow_run_id)
    rows = list(
        bigquery_client(settings)
        .query(
            f"SELECT * FROM {settings.quoted_table_ref('ph_sync_runs')} "
            f"WHERE flow_run_id = '{run_id}'"
        )
        .result()
    )
    assert {r["table_name"] for r in rows} == set(TABLES)
    assert all(r["status"] == "Completed" and r["rows_loaded"] == r["source_rows"] for r in rows)
    assert all(r["load_job_id"] and r["files"] >= 1 and r["bytes"] > 0 for r in rows)
    quality = json.loads(next(r for r in rows if r["table_name"] == "ph_leads")["quality"])
    assert quality["counts"]["json_unreadable"] > 0


def test_command_runs_one_table_and_exits_zero(synced: dict) -> None:
    env = {
        **os.environ,
        **synced["env"],
        **clock_at(SYNC_DATE),
        "PARTYHELP_BQ_DATASET": synced["env"]["PARTYHELP_BQ_DATASET"] + "_cli",
        "PARTYHELP_GCS_PREFIX": "exports-cli",  # the shared sync's exports stay as it left them
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.partyhelp_sync",
            "--date",
            "2026-11-25",
            "--tables",
            "ph_venues",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    settings = load_settings(env)
    client = bigquery_client(settings)
    dataset = f"{settings.bq_project}.{settings.bq_dataset}"
    tables = {t.table_id for t in client.list_tables(dataset)}
    assert "ph_venues" in tables and "ph_leads" not in tables


def test_command_fails_naming_the_missing_variable(synced: dict) -> None:
    env = {k: v for k, v in {**os.environ, **synced["env"]}.items() if k != "PARTYHELP_GCS_BUCKET"}
    result = subprocess.run(
        [sys.executable, "-m", "flows.partyhelp_sync"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "PARTYHELP_GCS_BUCKET is not set" in result.stderr
