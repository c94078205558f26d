"""The flow on a local Dask cluster (worker processes) gives the default runner's tables.

Both runs sync the same source into two datasets; every row of every table is compared.
Small chunks make each table several export tasks, so chunks really spread over workers.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from flows.partyhelp_sync import partyhelp_bigquery_sync
from partyhelp_pipeline.clients import bigquery_client
from partyhelp_pipeline.settings import load_settings
from partyhelp_pipeline.spec import TABLES
from tests.conftest import STANDARD_SYNC_DATE, create_bucket, sync_environment
from tests.oracle import bigquery_rows, diff_tables

SYNC_DATE = STANDARD_SYNC_DATE  # the day of the default runner's sync


def _sync(
    source_db: dict[str, Any], monkeypatch: pytest.MonkeyPatch, dataset: str, bucket: str, flow: Any
) -> Any:
    env = sync_environment(
        source_db["database"],
        source_db["user"],
        bucket,
        dataset,
        # 1 to 6 export chunks per table (13 in all)
        PARTYHELP_CHUNK_ROWS="200",
        PARTYHELP_CLOCK_DATE=SYNC_DATE.isoformat(),
    )  # the test's today
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # Dask worker processes inherit these
    state = flow(sync_date=SYNC_DATE, return_state=True)
    assert state.is_completed(), state.message
    return load_settings()


def test_dask_runner_gives_the_default_runners_tables(
    source_db: dict[str, Any], standard_sync: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect_dask import DaskTaskRunner

    token = secrets.token_hex(4)
    bucket = f"ph-dask-{token}"
    create_bucket(bucket)
    assert standard_sync["state"].is_completed(), standard_sync["state"].message
    default = standard_sync["settings"]  # the default runner's, shared read-only (conftest.py)
    on_dask = partyhelp_bigquery_sync.with_options(
        task_runner=DaskTaskRunner(
            cluster_kwargs={"n_workers": 2, "processes": True, "threads_per_worker": 1}
        )
    )
    dask = _sync(source_db, monkeypatch, f"ph_dask_{token}", bucket, on_dask)

    client = bigquery_client(default)
    for table, spec in TABLES.items():
        expected = bigquery_rows(client, default.table_ref(table), spec.primary_key)
        actual = bigquery_rows(client, dask.table_ref(table), spec.primary_key)
        assert len(actual) == len(expected) > 0, table
        assert diff_tables(expected, actual) == [], table
