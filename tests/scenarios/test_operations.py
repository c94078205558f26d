"""Audit trail, replay, backfill and runs that explain themselves, on the real stack."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from flows.partyhelp_sync import ARTIFACT_KEY, partyhelp_bigquery_backfill, partyhelp_bigquery_sync
from partyhelp_pipeline import export
from partyhelp_pipeline import manifest as mf
from partyhelp_pipeline.clients import bigquery_client, storage_client
from partyhelp_pipeline.export_target import ExportTarget
from partyhelp_pipeline.settings import load_settings
from partyhelp_pipeline.spec import TABLES
from tests.conftest import admin_connection
from tests.faultkit import new_target, source_database, sync_on, table_states

DAY_ONE, DAY_TWO = dt.date(2026, 11, 20), dt.date(2026, 11, 21)
SMALL = ["ph_venues", "ph_lead_purchases"]


@pytest.fixture()
def own_source(stack: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A small source this module may change, with its own bucket and dataset."""
    with source_database("ph_ops", scale=0.02, seed=3, edge_cases=False) as source:
        for key, value in new_target(source, "ops").items():
            monkeypatch.setenv(key, value)
        yield {"database": source.database, "settings": load_settings(), "source": source}


def _count(settings: Any, table: str) -> int:
    sql = f"SELECT COUNT(*) AS n FROM {settings.quoted_table_ref(table)}"
    return next(iter(bigquery_client(settings).query(sql).result()))["n"]


def _days(settings: Any, table: str) -> list[dt.date]:
    sql = f"SELECT DISTINCT sync_date FROM {settings.quoted_table_ref(table)} ORDER BY 1"
    return [row["sync_date"] for row in bigquery_client(settings).query(sql).result()]


def _partition_rows(settings: Any, table: str, day: dt.date) -> int:
    sql = (
        f"SELECT COUNT(*) AS n FROM {settings.quoted_table_ref(table)} "
        f"WHERE sync_date = '{day.isoformat()}'"
    )
    return next(iter(bigquery_client(settings).query(sql).result()))["n"]


def _delete_last_purchase(database: str) -> None:
    with admin_connection(database) as connection, connection.cursor() as cursor:
        cursor.execute("DELETE FROM lead_purchases ORDER BY id DESC LIMIT 1")


def _flow_run(run_id: Any, expected_task_runs: int = 1, timeout: float = 60) -> Any:
    """The flow run, its task runs and artifacts, once the task runs have reached the API
    (they arrive a few seconds after the flow run says Completed)."""
    deadline = time.monotonic() + timeout
    while True:
        run, tasks, artifacts = asyncio.run(_read_flow_run(run_id))
        if len(tasks) >= expected_task_runs or time.monotonic() > deadline:
            return run, tasks, artifacts
        time.sleep(1)


async def _read_flow_run(run_id: Any) -> Any:
    async with get_client() as client:
        run = await client.read_flow_run(run_id)
        runs = FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        tasks = await client.read_task_runs(flow_run_filter=runs)
        artifacts = await client.read_artifacts(flow_run_filter=runs)
        return run, tasks, artifacts


def test_replay_reloads_a_past_day_without_mysql(
    own_source: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, database = own_source["settings"], own_source["database"]
    first = sync_on(DAY_ONE, tables=SMALL)
    assert first.is_completed(), first.message
    day_one_rows = _count(settings, "ph_lead_purchases")
    _delete_last_purchase(database)
    second = sync_on(DAY_TWO, tables=SMALL)
    assert second.is_completed(), second.message
    assert _count(settings, "ph_lead_purchases") == day_one_rows - 1

    # MySQL unreachable from here on: a replay must not need it.
    monkeypatch.setenv("PARTYHELP_MYSQL_PORT", "1")
    replay = partyhelp_bigquery_sync(
        sync_date=DAY_ONE, tables=SMALL, from_exports=True, return_state=True
    )
    assert replay.is_completed(), replay.message
    # An older day fills its history partition; the current tables keep their newer day.
    assert _count(settings, "ph_lead_purchases") == day_one_rows - 1
    assert _days(settings, "ph_venues") == [DAY_TWO]
    assert _partition_rows(settings, "ph_lead_purchases_history", DAY_ONE) == day_one_rows
    # Asked for explicitly, a replay rolls the current tables back to its day.
    rollback = partyhelp_bigquery_sync(
        sync_date=DAY_ONE, tables=SMALL, from_exports=True, replace_current=True, return_state=True
    )
    assert rollback.is_completed(), rollback.message
    assert _count(settings, "ph_lead_purchases") == day_one_rows
    assert _days(settings, "ph_venues") == [DAY_ONE]
    assert _partition_rows(settings, "ph_lead_purchases_history", DAY_ONE) == day_one_rows

    audit_rows = list(
        bigquery_client(settings)
        .query(f"SELECT * FROM {settings.quoted_table_ref('ph_sync_runs')}")
        .result()
    )
    audit = {(r["sync_date"], r["mode"], r["table_name"]): r for r in audit_rows}
    replays = [
        r
        for r in audit_rows
        if (r["sync_date"], r["mode"], r["table_name"]) == (DAY_ONE, "replay", "ph_lead_purchases")
    ]
    synced = audit[(DAY_ONE, "sync", "ph_lead_purchases")]
    assert [r["current_replaced"] for r in sorted(replays, key=lambda r: r["ended_at"])] == [
        False,
        True,
    ]
    for replayed in replays:
        assert replayed["manifest_uri"] == synced["manifest_uri"]
        assert replayed["rows_loaded"] == day_one_rows and replayed["status"] == "Completed"
        assert replayed["checksums"] == synced["checksums"]


def test_replay_refuses_and_changes_nothing_without_a_manifest(own_source: dict) -> None:
    settings = own_source["settings"]
    assert sync_on(DAY_TWO, tables=SMALL).is_completed()
    before = table_states(settings)  # content: the emulator never updates `modified`
    state = partyhelp_bigquery_sync(
        sync_date=DAY_ONE, tables=SMALL, from_exports=True, return_state=True
    )
    assert state.is_failed()
    assert "replay refused, nothing was changed" in state.message
    assert "ph_venues: no manifest under" in state.message
    assert table_states(settings) == before


def test_replay_refuses_a_part_whose_checksum_does_not_match(own_source: dict) -> None:
    settings = own_source["settings"]
    assert sync_on(DAY_ONE, tables=SMALL).is_completed()
    client = storage_client(settings)
    manifest = mf.find_latest_manifest(
        client, settings.gcs_bucket, settings.gcs_prefix, DAY_ONE, "ph_venues"
    )
    bucket, name = mf.split_gs_uri(manifest.parts[0].uri)
    blob = client.bucket(bucket).blob(name)
    blob.upload_from_string(blob.download_as_bytes()[:-20])  # a truncated part, for real
    # The tables hold DAY_ONE already: change them to DAY_TWO, so a replay would show.
    assert sync_on(DAY_TWO, tables=SMALL).is_completed()
    before = table_states(settings)
    state = partyhelp_bigquery_sync(
        sync_date=DAY_ONE, tables=SMALL, from_exports=True, return_state=True
    )
    assert state.is_failed()
    assert f"ph_venues: part {manifest.parts[0].uri} does not match" in state.message
    assert table_states(settings) == before


def test_backfill_replays_days_with_exports_and_names_the_others(own_source: dict) -> None:
    settings = own_source["settings"]
    for day in (DAY_ONE, DAY_TWO):
        assert sync_on(day, tables=SMALL).is_completed()
    history = settings.quoted_table_ref("ph_venues_history")
    bigquery_client(settings).query(f"DELETE FROM {history} WHERE TRUE").result()
    state = partyhelp_bigquery_backfill(
        DAY_ONE - dt.timedelta(days=1), DAY_TWO, SMALL, return_state=True
    )
    # A day not done fails the backfill's flow run, in Prefect too (the alert sees it),
    # naming the day; every other day was done all the same (issue 19).
    run, _, _ = _flow_run(state.state_details.flow_run_id, expected_task_runs=0)
    print(f"backfill flow run {run.name}: {run.state.type.value} {run.state.message!r}")
    assert run.state.is_failed(), run.state
    assert (
        "backfill: 1 of 3 days not done: 2026-11-19 skipped: no kept exports" in run.state.message
    )
    result = state.result(raise_on_failure=False).results
    assert result["2026-11-19"].startswith("skipped: no kept exports")
    assert "MySQL only holds today's state" in result["2026-11-19"]
    assert result["2026-11-20"] == result["2026-11-21"] == "replayed"
    replays = list(
        bigquery_client(settings)
        .query(
            f"SELECT sync_date, COUNT(DISTINCT flow_run_id) AS runs "
            f"FROM {settings.quoted_table_ref('ph_sync_runs')} WHERE mode = 'replay' "
            f"GROUP BY sync_date ORDER BY sync_date"
        )
        .result()
    )
    # one flow run per day replayed
    assert [(r["sync_date"], r["runs"]) for r in replays] == [(DAY_ONE, 1), (DAY_TWO, 1)]
    day = next(
        iter(
            bigquery_client(settings)
            .query(f"SELECT DISTINCT sync_date FROM {settings.quoted_table_ref('ph_venues')}")
            .result()
        )
    )
    assert day["sync_date"] == DAY_TWO  # the range ends with its last day loaded
    # Each replayed day filled its history partition again.
    assert _days(settings, "ph_venues_history") == [DAY_ONE, DAY_TWO]
    assert _partition_rows(settings, "ph_venues_history", DAY_ONE) == _count(settings, "ph_venues")


def test_run_explains_itself(standard_sync: dict, source_db: dict) -> None:
    """Read only: the worker's shared full sync of the edge-case database (conftest.py),
    whose purchases include orphans (a venue id no venue has)."""
    state = standard_sync["state"]
    assert state.is_completed(), state.message
    with admin_connection(source_db["database"]) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.id FROM lead_purchases AS p LEFT JOIN venues AS v ON v.id = p.venue_id "
            "WHERE p.venue_id IS NOT NULL AND v.id IS NULL ORDER BY p.id"
        )
        orphan_ids = [row[0] for row in cursor.fetchall()]
    assert orphan_ids
    expected = 4 * len(TABLES) + 4  # plan/export/manifest/load each, and 4 once per run
    _run, task_runs, artifacts = _flow_run(state.state_details.flow_run_id, expected)
    names = {  # a table of several chunks exports it in tasks named export-TABLE-chunk-NNNN
        t.name.rsplit("-", 1)[0]
        if t.name.startswith("record-audit")
        else re.sub(r"-chunk-\d+$", "", t.name)
        for t in task_runs
    }
    for table in TABLES:
        assert {f"export-{table}", f"manifest-{table}", f"load-{table}", f"plan-{table}"} <= names
    assert "refresh-view-ph_sales_billing_summary" in names
    summary = next(a for a in artifacts if a.key == ARTIFACT_KEY)
    for table in TABLES:
        assert f"| {table} | Completed |" in summary.data
    manifest_links = [
        line
        for line in summary.data.splitlines()
        if line.startswith("- ph_") and "manifest.json" in line
    ]
    assert len(manifest_links) == len(TABLES)
    purchases_row = next(
        line for line in summary.data.splitlines() if line.startswith("| ph_lead_purchases |")
    )
    assert "anomal" in purchases_row
    prefix = f"| ph_lead_purchases | orphan_venue | anomaly | {len(orphan_ids):,} | "
    orphan_row = next(line for line in summary.data.splitlines() if line.startswith(prefix))
    examples = orphan_row.removeprefix(prefix).removesuffix(" |").split(", ")
    assert examples and {int(i) for i in examples} <= set(orphan_ids)


def test_long_exports_log_progress(own_source: dict, caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(
        {**os.environ, "PARTYHELP_PROGRESS_SECONDS": "0", "PARTYHELP_BATCH_ROWS": "5"}
    )
    spec = TABLES["ph_lead_matches"]
    target = ExportTarget.from_settings(settings)
    plan = export.plan_export(target, spec, DAY_ONE, None)
    logger = logging.getLogger("test-progress")
    with caplog.at_level(logging.INFO, logger="test-progress"):
        result = export.export_chunk(target, spec, plan, 0, logger=logger)
    progress = [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith("export-ph_lead_matches chunk 0: ")
    ]
    assert len(progress) >= result.rows // 5 - 1
    # rows so far, of the source's count known before streaming, the rate and an ETA
    assert progress[-1].startswith(
        f"export-ph_lead_matches chunk 0: {result.rows} of {result.rows} rows (100.0 %), "
    )
    assert "rows/s, ETA 0 s" in progress[-1]
    assert "ETA" in progress[0] and " of " in progress[0]


def test_server_time_zone_does_not_shift_timestamps(own_source: dict) -> None:
    """A MySQL server whose own time zone is not UTC: values still arrive in UTC."""
    settings, database = own_source["settings"], own_source["database"]
    with admin_connection(database) as connection, connection.cursor() as cursor:
        cursor.execute("SET SESSION time_zone = '+00:00'")
        cursor.execute("UPDATE venues SET created_at = '2026-03-31 23:30:00' ORDER BY id LIMIT 1")
        cursor.execute("SELECT MIN(id) FROM venues")
        first_id = cursor.fetchone()[0]
        cursor.execute("SELECT @@GLOBAL.time_zone")
        saved = cursor.fetchone()[0]
        cursor.execute("SET GLOBAL time_zone = '+10:30'")
    try:
        with admin_connection(database) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT created_at FROM venues WHERE id = %s", (first_id,))
            assert cursor.fetchone()[0] == dt.datetime(2026, 4, 1, 10, 0)  # the server's view
        state = sync_on(DAY_ONE, tables=["ph_venues"])
        assert state.is_completed(), state.message
    finally:
        with admin_connection() as connection, connection.cursor() as cursor:
            cursor.execute("SET GLOBAL time_zone = %s", (saved,))
    row = next(
        iter(
            bigquery_client(settings)
            .query(
                f"SELECT created_at FROM {settings.quoted_table_ref('ph_venues')} "
                f"WHERE venue_id = {int(first_id)}"
            )
            .result()
        )
    )
    assert row["created_at"] == dt.datetime(2026, 3, 31, 23, 30, tzinfo=dt.UTC)


def test_jobs_run_in_an_existing_datasets_own_location(
    own_source: dict, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dataset exists already, in US, while PARTYHELP_BQ_LOCATION says otherwise:
    BigQuery runs a dataset's jobs only in its location, so the client must use the
    dataset's. (The emulator runs jobs whatever location they name, so the location the
    client sends is asserted, beside a whole run that completes.)"""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    monkeypatch.setenv("PARTYHELP_BQ_LOCATION", "australia-southeast1")
    settings = load_settings()
    dataset = bigquery.Dataset(f"{settings.bq_project}.{settings.bq_dataset}")
    dataset.location = "US"
    bigquery.Client(project=settings.bq_project, credentials=AnonymousCredentials()).create_dataset(
        dataset
    )
    with caplog.at_level(logging.WARNING, logger="partyhelp_sync"):
        assert bigquery_client(settings).location == "US"
    assert any("is in US: its jobs run there" in r.getMessage() for r in caplog.records)
    state = sync_on(DAY_ONE, tables=["ph_venues"])
    assert state.is_completed(), state.message
    assert _count(settings, "ph_venues") == own_source["source"].scalar(
        "SELECT COUNT(*) FROM venues"
    )


def test_parts_beyond_one_load_jobs_limit_load_in_several_jobs(
    own_source: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BigQuery takes at most 10,000 URIs in one load job; here the limit is made 2 and the
    parts small, so each table needs several jobs (the first replaces staging, the others
    append): every cell still equals the source, and the audit row names every job."""
    from tests.faultkit import assert_table_equals_source, query

    monkeypatch.setenv("PARTYHELP_PART_MAX_BYTES", "1024")
    monkeypatch.setenv("PARTYHELP_BATCH_ROWS", "2")  # a block a batch: parts roll often
    monkeypatch.setenv("PARTYHELP_LOAD_MAX_URIS", "2")
    settings = load_settings()
    state = sync_on(DAY_ONE, tables=SMALL)
    assert state.is_completed(), state.message
    source = own_source["source"]
    audit = {
        r["table_name"]: r
        for r in query(
            settings,
            f"SELECT table_name, files, load_job_id FROM "
            f"{settings.quoted_table_ref('ph_sync_runs')}",
        )
    }
    for table in SMALL:
        assert_table_equals_source(settings, source, table, DAY_ONE)
        parts, jobs = audit[table]["files"], audit[table]["load_job_id"].split(",")
        assert len(jobs) == (parts + 1) // 2 == len(set(jobs))
    assert audit["ph_lead_purchases"]["files"] >= 3
