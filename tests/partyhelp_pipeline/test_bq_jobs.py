"""Every BigQuery job that writes has a deterministic id: a retry attaches, never repeats.

On the real local stack. What the local-bigquery emulator does with an id used twice was
checked first, and is asserted here: it refuses the second insert with 409 Conflict ("Already
Exists: Job ...", as BigQuery does), runs nothing, and ``get_job`` returns the first job,
failed ones included (whose id it also refuses to reuse, as BigQuery does).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import uuid

import pytest
from google.api_core import exceptions as gexc
from google.cloud import bigquery

from partyhelp_pipeline import bq_jobs
from partyhelp_pipeline.clients import bigquery_client
from partyhelp_pipeline.settings import Settings, load_settings
from partyhelp_pipeline.spec import AUDIT_TABLE, TABLES
from partyhelp_pipeline.warehouse.target import ensure_dataset, open_warehouse
from tests.bq_proxy import LosingProxy
from tests.faultkit import flow_run_record, query, retry_flow_run, sync_on

VALID_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,1024}$")
SYNC_DATE = dt.date(2026, 11, 25)
SYNCED = ["ph_venues", "ph_lead_purchases"]
WINDOW = 30.0  # of each call of bq_jobs.start_job here


def test_job_ids_are_valid_and_follow_the_run_the_attempt_and_the_input() -> None:
    with bq_jobs.job_run("0b6f-run", 1):
        first = bq_jobs.job_id("load", "ph_venues", "staging", [("gs://b/p1", "crc1")])
        again = bq_jobs.job_id("load", "ph_venues", "staging", [("gs://b/p1", "crc1")])
        new_part = bq_jobs.job_id("load", "ph_venues", "staging", [("gs://b/p1", "crc2")])
        other_step = bq_jobs.job_id("publish", "ph_venues", "staging", [("gs://b/p1", "crc1")])
        odd = bq_jobs.job_id("view", "tâble.with spaces/" * 200, "x")
    with bq_jobs.job_run("0b6f-run", 2):
        next_attempt = bq_jobs.job_id("load", "ph_venues", "staging", [("gs://b/p1", "crc1")])
    with bq_jobs.job_run("other-run", 1):
        other_run = bq_jobs.job_id("load", "ph_venues", "staging", [("gs://b/p1", "crc1")])
    assert first == again  # a retry of the task meets its own job
    assert first.startswith("partyhelp_load_ph_venues_0b6f-run_a1_")
    assert len({first, new_part, other_step, next_attempt, other_run}) == 5
    outside = {bq_jobs.job_id("load", "ph_venues", "x") for _ in range(2)}
    assert len(outside) == 2  # no flow run: unique ids, as job_id_prefix gave
    for job_id in (first, odd, bq_jobs.try_id(odd, bq_jobs.JOB_TRIES), *outside):
        assert VALID_JOB_ID.match(job_id), job_id


@pytest.fixture()
def settings(sync_env: dict[str, str]) -> Settings:
    settings = load_settings()
    ensure_dataset(open_warehouse(settings))
    return settings


def _jobs_named(client: bigquery.Client, base_id: str) -> list[str]:
    return sorted(
        j.job_id for j in client.list_jobs(max_results=5000) if j.job_id.startswith(base_id)
    )


def test_an_id_used_twice_attaches_and_a_failed_job_is_run_anew(settings: Settings) -> None:
    client = bigquery_client(settings)
    table = settings.table_ref("attach_probe")
    client.create_table(bigquery.Table(table, schema=[bigquery.SchemaField("n", "INT64")]))
    config = bigquery.LoadJobConfig(
        schema=[bigquery.SchemaField("n", "INT64")],
        write_disposition="WRITE_APPEND",
        source_format="NEWLINE_DELIMITED_JSON",
    )
    base = f"probe_{uuid.uuid4().hex}"

    def append(job_id: str) -> bigquery.LoadJob:
        return client.load_table_from_json([{"n": 1}], table, job_config=config, job_id=job_id)

    append(base).result()
    with pytest.raises(gexc.Conflict):  # the emulator, like BigQuery, refuses the id
        append(base)
    for _ in range(2):  # two retries of a task that had appended the row
        assert (
            bq_jobs.start_job(client, base, append, what="probe", window=WINDOW).result().job_id
            == base
        )
    assert query(settings, f"SELECT COUNT(*) AS n FROM `{table}`") == [{"n": 1}]
    assert _jobs_named(client, base) == [base]

    failing = f"probe_{uuid.uuid4().hex}"
    missing = settings.quoted_table_ref("no_such_table")
    with pytest.raises(gexc.NotFound):
        client.query(
            f"INSERT INTO {missing} (n) VALUES (1)", job_id=failing, job_retry=None
        ).result(job_retry=None)
    # The failed job's id is taken for good: the retry runs under the next try id.
    job = bq_jobs.start_job(client, failing, append, what="probe", window=WINDOW)
    assert job.result().job_id == f"{failing}_t2"
    assert query(settings, f"SELECT COUNT(*) AS n FROM `{table}`") == [{"n": 2}]


def _count(settings: Settings, sql: str) -> int:
    return int(query(settings, sql)[0]["n"])


# The first insert of each of these jobs is lost on its way back (tests/bq_proxy.py: a fake
# of a network fault): "error" fails the task, whose retry meets the job; "reset" makes the
# client library resend the insert, which meets it at once. The audit append is an upload,
# whose library resends on a 503 too: it meets its job without a task retry (the path of a
# task retry of an append is the second test's).
LOST = {
    r"^partyhelp_load_ph_venues_": "error",
    r"^partyhelp_publish_ph_venues_": "reset",
    r"^partyhelp_history_ph_lead_purchases_": "error",
    r"^partyhelp_view_ph_sales_billing_summary_": "error",
    r"^partyhelp_audit_": "error",
}


def test_jobs_that_finished_while_their_task_failed_are_attached_not_run_again(
    sync_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with LosingProxy(os.environ["BIGQUERY_EMULATOR_HOST"], LOST) as proxy:
        monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", proxy.url)
        state = sync_on(SYNC_DATE, tables=SYNCED)
        settings = load_settings()
        assert state.is_completed(), state.message
        run_id = str(state.state_details.flow_run_id)

        # Each lost job was created once by the emulator; its second insert was refused as
        # a duplicate (409), and no other try id was ever inserted for it.
        assert set(proxy.lost.values()) == {"error", "reset"}
        assert len(proxy.lost) == len(LOST), sorted(proxy.lost)
        for job_id in proxy.lost:
            assert proxy.inserts[job_id] == [200, 409], (job_id, proxy.inserts[job_id])
            assert not [j for j in proxy.inserts if j.startswith(f"{job_id}_t")]
            job = bigquery_client(settings).get_job(job_id)
            assert job.state == "DONE" and job.error_result is None

        audit = settings.quoted_table_ref(AUDIT_TABLE.name)
        rows = query(
            settings, f"SELECT table_name, source_rows FROM {audit} WHERE flow_run_id = '{run_id}'"
        )
        assert sorted(r["table_name"] for r in rows) == sorted(SYNCED)  # one row each
        for table in SYNCED:  # loaded once: the source's count, not twice it
            expected = next(r["source_rows"] for r in rows if r["table_name"] == table)
            history = settings.quoted_table_ref(TABLES[table].history_name)
            assert (
                _count(
                    settings, f"SELECT COUNT(*) AS n FROM {history} WHERE sync_date = '{SYNC_DATE}'"
                )
                == expected
                > 0
            )
            assert (
                _count(settings, f"SELECT COUNT(*) AS n FROM {settings.quoted_table_ref(table)}")
                == expected
            )
        tables = {
            t.table_id
            for t in bigquery_client(settings).list_tables(
                f"{settings.bq_project}.{settings.bq_dataset}"
            )
        }
        assert not [t for t in tables if t.startswith("_staging_")]

        # The tasks really failed and were retried (the "error" faults), then completed.
        record = flow_run_record(run_id, final_log="Finished in state Completed")
        for name in (
            "load-ph_venues",
            "load-ph_lead_purchases",
            "refresh-view-ph_sales_billing_summary",
        ):
            task = record.task(name)
            assert (task.run_count, task.state_name) == (2, "Completed"), name
        attached = {
            found.group(1)
            for m in record.messages()
            if (found := re.search(r"job (\S+) was started by an earlier", m))
        }
        # ph_lead_purchases' retry (its history job lost) met its finished load job too:
        # the load ran once, its second insert refused.
        (load,) = [j for j in proxy.inserts if j.startswith("partyhelp_load_ph_lead_purchases")]
        assert proxy.inserts[load] == [200, 409]
        assert attached == {*proxy.lost, load}

        # A retry of the whole run (as from the UI) is a new attempt: it appends its own
        # rows, one per table, and reuses the finished loads (no new load job).
        inserted = set(proxy.inserts)
        from flows.partyhelp_sync import partyhelp_bigquery_sync

        retried = retry_flow_run(partyhelp_bigquery_sync, run_id)
        assert retried.is_completed(), retried.message
        rows = query(
            settings,
            f"SELECT table_name, COUNT(*) AS n FROM {audit} WHERE "
            f"flow_run_id = '{run_id}' GROUP BY table_name",
        )
        assert sorted((r["table_name"], r["n"]) for r in rows) == [(t, 2) for t in sorted(SYNCED)]
        new = set(proxy.inserts) - inserted
        assert [j for j in new if j.startswith("partyhelp_audit_")]
        assert all("_a2_" in j for j in new if j.startswith("partyhelp_audit_"))
        assert not [j for j in new if j.startswith("partyhelp_load_")]
