"""Every run leaves a trace: the freshness view and the labels, on real runs of the flow.

One source database of this module's own is synced twice (two days), with a venue deleted
in between, into a dataset of its own:

- ``ph_sync_freshness`` answers one row per table: the second run's sync date, time and
  rows, hours since that are small and not negative, and ``rows_change`` equal to the
  difference (-1 for ph_venues, 0 for ph_lead_purchases);
- every BigQuery job of the two runs carries ``pipeline``, ``table``, ``sync_date`` and
  ``flow_run``, and each table has its load, copy and query jobs among them; the dataset
  and every table and view carry ``source`` and ``pii``.

The BigQuery emulator stores and returns labels of jobs (``jobs.get``, ``jobs.list``),
datasets and tables, so these tests read them back from BigQuery, not from what the client
sent. It also behaves like BigQuery in dropping a view's labels on CREATE OR REPLACE VIEW:
the labels seen here after the second run are the ones the sync set again afterwards.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from google.cloud import bigquery

from partyhelp_pipeline.clients import bigquery_client
from partyhelp_pipeline.settings import Settings
from partyhelp_pipeline.spec import (
    AUDIT_TABLE,
    SALES_BILLING_SUMMARY,
    SALES_BY_FINANCIAL_PERIOD,
    TABLES,
)
from partyhelp_pipeline.spec.tables import FRESHNESS_VIEW, HEALTH_VIEW, METRICS_TABLE
from partyhelp_pipeline.warehouse.labels import (
    current_job_labels,
    job_labels,
    labelled_jobs,
    loaded_table_labels,
)
from partyhelp_pipeline.warehouse.target import ensure_dataset, open_warehouse, run_query
from tests.faultkit import (
    Source,
    environment,
    manifests,
    new_target,
    query,
    source_database,
    sync_on,
)

pytestmark = pytest.mark.usefixtures("stack")

FIRST_DAY, SECOND_DAY = dt.date(2026, 11, 24), dt.date(2026, 11, 25)
SYNCED = ["ph_venues", "ph_lead_purchases"]  # the billing view reads ph_lead_purchases
ONE_CHUNK = {"PARTYHELP_CHUNK_ROWS": "2000000000"}
LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
JOB_LABEL_KEYS = {"pipeline", "table", "sync_date", "flow_run"}
# BigQuery's legacy names of the types that the API returns for a view's schema.
API_TYPES = {"FLOAT64": "FLOAT", "INT64": "INTEGER", "BOOL": "BOOLEAN"}


@dataclasses.dataclass
class Runs:
    """The module's two completed runs and what they left."""

    settings: Settings
    source: Source
    run_ids: dict[dt.date, str]  # sync date -> flow run id
    venues: tuple[int, int]  # source venues at the first and at the second run
    jobs: list[Any]  # every BigQuery job created while the two runs ran


def _sync(day: dt.date) -> str:
    state = sync_on(day, tables=SYNCED)
    assert state.is_completed(), state.message
    return str(state.state_details.flow_run_id)


@pytest.fixture(scope="module")
def runs(stack: None) -> Iterator[Runs]:
    """Two completed syncs of the module's own source, a venue deleted between them."""
    with (
        source_database("ph_trace", scale=0.01, seed=29) as source,
        environment(new_target(source, "trace", **ONE_CHUNK)) as settings,
    ):
        started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        first = _sync(FIRST_DAY)
        before = source.scalar("SELECT COUNT(*) FROM venues")
        source.sql("DELETE FROM venues ORDER BY id LIMIT 1")  # under the row-drop limit
        second = _sync(SECOND_DAY)
        ended = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        # Modules run one after another on a worker (and each worker has its own
        # emulators), but the module before may have left a job in the window's first
        # second: the run's jobs are the window's jobs on this module's dataset.
        client = bigquery_client(settings)
        jobs = [
            job
            for job in client.list_jobs(
                all_users=True, min_creation_time=started, max_creation_time=ended
            )
            if _on_dataset(client.get_job(job.job_id), settings.bq_dataset)
        ]
        after = source.scalar("SELECT COUNT(*) FROM venues")
        yield Runs(settings, source, {FIRST_DAY: first, SECOND_DAY: second}, (before, after), jobs)


def _on_dataset(job: Any, dataset: str) -> bool:
    """Whether a job writes to ``dataset`` or its query reads from it."""
    destination = getattr(job, "destination", None)
    if destination is not None and destination.dataset_id == dataset:
        return True
    return dataset in (getattr(job, "query", None) or "")


def _audit(settings: Settings, day: dt.date, table: str) -> dict[str, Any]:
    rows = query(
        settings,
        f"SELECT * FROM {settings.quoted_table_ref(AUDIT_TABLE.name)} "
        f"WHERE sync_date = '{day}' AND table_name = '{table}'",
    )
    assert len(rows) == 1, rows
    return rows[0]


def test_freshness_view_answers_per_table(runs: Runs) -> None:
    settings = runs.settings
    asked = time.time()
    rows = query(
        settings,
        f"SELECT * FROM {settings.quoted_table_ref(FRESHNESS_VIEW.name)} ORDER BY table_name",
    )
    assert [r["table_name"] for r in rows] == sorted(SYNCED)
    fresh = {r["table_name"]: r for r in rows}
    before, after = runs.venues
    assert after == before - 1
    purchases = _audit(settings, FIRST_DAY, "ph_lead_purchases")["rows_loaded"]
    expected = {"ph_venues": (after, before, -1), "ph_lead_purchases": (purchases, purchases, 0)}
    for table, (loaded, previous, change) in expected.items():
        row, audit = fresh[table], _audit(settings, SECOND_DAY, table)
        assert list(row) == [c.name for c in FRESHNESS_VIEW.columns]
        assert row["sync_date"] == SECOND_DAY
        assert row["synced_at"] == audit["ended_at"]
        assert row["flow_run_id"] == runs.run_ids[SECOND_DAY]
        assert (row["rows_loaded"], row["previous_rows_loaded"], row["rows_change"]) == (
            loaded,
            previous,
            change,
        )
        assert 0 <= row["hours_since"] <= (asked - audit["ended_at"].timestamp()) / 3600 + 0.01
    print("ph_sync_freshness:", *rows, sep="\n  ")


def test_freshness_view_is_documented_as_its_spec(runs: Runs) -> None:
    view = bigquery_client(runs.settings).get_table(runs.settings.table_ref(FRESHNESS_VIEW.name))
    assert view.table_type == "VIEW"
    assert view.description == FRESHNESS_VIEW.description
    assert [(f.name, f.field_type, f.description) for f in view.schema] == [
        (c.name, API_TYPES.get(c.type, c.type), c.description) for c in FRESHNESS_VIEW.columns
    ]


def test_every_job_of_a_run_is_labelled(runs: Runs) -> None:
    client = bigquery_client(runs.settings)
    seen: set[tuple[str, str, str]] = set()
    for listed in runs.jobs:
        labels = client.get_job(listed.job_id).labels  # read back, not what was sent
        assert set(labels) == JOB_LABEL_KEYS, (listed.job_id, labels)
        assert all(LABEL_KEY.match(k) and LABEL_VALUE.match(v) for k, v in labels.items())
        day = dt.date.fromisoformat(labels["sync_date"])
        assert labels["pipeline"] == "partyhelp-bigquery-sync"
        assert labels["flow_run"] == runs.run_ids[day], labels
        seen.add((labels["sync_date"], labels["table"], listed.job_type))
    for day in runs.run_ids:
        expected = {(table, kind) for table in SYNCED for kind in ("load", "copy", "query")}
        expected |= {
            (AUDIT_TABLE.name, "load"),
            (FRESHNESS_VIEW.name, "query"),
            (HEALTH_VIEW.name, "query"),
            (SALES_BILLING_SUMMARY.name, "query"),
            (SALES_BY_FINANCIAL_PERIOD.name, "query"),
        }
        assert {(table, kind) for d, table, kind in seen if d == day.isoformat()} == expected
    print(
        "job labels:",
        *sorted({str(client.get_job(j.job_id).labels) for j in runs.jobs}),
        sep="\n  ",
    )


def test_jobs_named_in_the_audit_carry_their_run(runs: Runs) -> None:
    client = bigquery_client(runs.settings)
    for day, run_id in runs.run_ids.items():
        for table in SYNCED:
            audit = _audit(runs.settings, day, table)
            for job_id in (*audit["load_job_id"].split(","), audit["copy_job_id"]):
                assert client.get_job(job_id).labels == {
                    "pipeline": "partyhelp-bigquery-sync",
                    "table": table,
                    "sync_date": day.isoformat(),
                    "flow_run": run_id,
                }


def test_dataset_and_tables_carry_source_and_pii(runs: Runs) -> None:
    settings, client = runs.settings, bigquery_client(runs.settings)
    none = {"source": "partyhelp-mysql", "pii": "none"}
    dataset = client.get_dataset(f"{settings.bq_project}.{settings.bq_dataset}")
    assert dataset.labels == none
    names = [
        *SYNCED,
        *(TABLES[t].history_name for t in SYNCED),
        AUDIT_TABLE.name,
        SALES_BILLING_SUMMARY.name,
        SALES_BY_FINANCIAL_PERIOD.name,
        FRESHNESS_VIEW.name,
        METRICS_TABLE.name,
        HEALTH_VIEW.name,
    ]
    tables = {t.table_id for t in client.list_tables(dataset)}
    assert tables == set(names)  # no staging table left behind
    for name in names:
        assert client.get_table(settings.table_ref(name)).labels == none, name
    print("dataset labels:", dataset.labels)


def test_dataset_labels_follow_the_pii_setting(runs: Runs) -> None:
    """``ensure_dataset`` updates labels that differ and keeps labels it does not own."""
    settings, client = runs.settings, bigquery_client(runs.settings)
    reference = f"{settings.bq_project}.{settings.bq_dataset}"
    dataset = client.get_dataset(reference)
    dataset.labels = {"cost_centre": "finance"}
    client.update_dataset(dataset, ["labels"])
    hashing = settings.model_copy(update={"include_pii_hashes": True})
    try:
        ensure_dataset(open_warehouse(hashing))
        assert client.get_dataset(reference).labels == {
            "source": "partyhelp-mysql",
            "pii": "hashed",
            "cost_centre": "finance",
        }
    finally:
        ensure_dataset(open_warehouse(settings))
    assert client.get_dataset(reference).labels == {
        "source": "partyhelp-mysql",
        "pii": "none",
        "cost_centre": "finance",
    }


def test_a_table_with_pii_hashes_is_labelled_hashed(runs: Runs) -> None:
    leads = TABLES["ph_leads"]
    manifest = manifests(runs.settings, SECOND_DAY, "ph_venues")[0]
    hashed = dataclasses.replace(
        manifest, table=leads.name, bigquery_schema=leads.bigquery_schema(True)
    )
    plain = dataclasses.replace(hashed, bigquery_schema=leads.bigquery_schema(False))
    assert loaded_table_labels(leads, hashed)["pii"] == "hashed"
    assert loaded_table_labels(leads, plain)["pii"] == "none"
    assert loaded_table_labels(TABLES["ph_venues"], manifest)["pii"] == "none"


def test_job_labels_follow_bigquerys_label_rules() -> None:
    labels = job_labels("ph_venues", dt.date(2026, 11, 25), None)
    assert labels == {
        "pipeline": "partyhelp-bigquery-sync",
        "table": "ph_venues",
        "sync_date": "2026-11-25",
        "flow_run": "local",
    }
    odd = job_labels("PH Venues/" + "x" * 80, dt.date(2026, 11, 25), "Run:ABC")
    assert odd["table"] == ("ph-venues-" + "x" * 80)[:63]
    assert odd["flow_run"] == "run-abc"
    for key, value in odd.items():
        assert LABEL_KEY.match(key) and LABEL_VALUE.match(value), (key, value)


def test_run_query_adds_the_labels_of_its_block(runs: Runs) -> None:
    """``run_query`` adds the labels of ``labelled_jobs`` to a query's own, only inside."""
    settings, client = runs.settings, bigquery_client(runs.settings)
    labels = job_labels("ph_leads", dt.date(2026, 11, 25), "abc")
    with labelled_jobs(labels):
        inside = run_query(
            open_warehouse(settings),
            "SELECT 1 AS x",
            bigquery.QueryJobConfig(labels={"purpose": "check"}),
        )
    outside = run_query(open_warehouse(settings), "SELECT 1 AS x")
    assert client.get_job(inside.job_id).labels == {**labels, "purpose": "check"}
    assert client.get_job(outside.job_id).labels == {}
    assert current_job_labels() == {}
