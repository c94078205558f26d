"""A chunk's progress: log lines with the rows so far, the source's count, the rate and an
ETA at most every interval, and a Prefect progress artifact when the export runs inside a
task (the real local Prefect server); outside a task run there is no artifact."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import pytest

from partyhelp_pipeline import export
from partyhelp_pipeline.export_target import ExportTarget
from partyhelp_pipeline.progress import ChunkProgress, create_progress_artifact
from partyhelp_pipeline.settings import load_settings
from partyhelp_pipeline.spec import TABLES

SYNC_DATE = dt.date(2026, 11, 25)
LOGGER = "test-progress"


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_each_line_gives_rows_of_the_source_count_a_rate_and_an_eta(
    caplog: pytest.LogCaptureFixture,
) -> None:
    progress = ChunkProgress(logging.getLogger(LOGGER), "ph_venues", 3, every=0)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        progress.start(200)
        progress.update(50)
        progress.update(200)
        progress.finish()
    first, last = _lines(caplog)
    assert first.startswith("export-ph_venues chunk 3: 50 of 200 rows (25.0 %), ")
    assert "rows/s, ETA " in first and first.endswith(" s")
    assert last.startswith("export-ph_venues chunk 3: 200 of 200 rows (100.0 %), ")
    assert last.endswith("rows/s, ETA 0 s")


def test_lines_come_at_most_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    progress = ChunkProgress(logging.getLogger(LOGGER), "ph_venues", 0, every=3600)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        progress.start(1000)
        for rows in range(0, 1001, 100):
            progress.update(rows)
        progress.finish()
    assert _lines(caplog) == []


def test_an_empty_chunk_is_complete(caplog: pytest.LogCaptureFixture) -> None:
    progress = ChunkProgress(logging.getLogger(LOGGER), "ph_venues", 0, every=0)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        progress.start(0)
        progress.update(0)
    (line,) = _lines(caplog)
    assert line.startswith("export-ph_venues chunk 0: 0 of 0 rows (100.0 %), 0 rows/s, ")


def test_outside_a_task_run_there_is_no_artifact() -> None:
    assert create_progress_artifact(logging.getLogger(LOGGER), "export-x-chunk-0", "x") is None


def test_a_progress_artifact_follows_an_export_inside_a_prefect_task(
    sync_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the real Prefect server: the chunk's task run holds a progress artifact at 100 %
    described with the source's row count."""
    from prefect import flow, task
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterTaskRunId
    from prefect.context import get_run_context

    monkeypatch.setenv("PARTYHELP_PROGRESS_SECONDS", "0")
    target = ExportTarget.from_settings(load_settings())
    spec = TABLES["ph_venues"]

    @task
    def export_venues() -> tuple[str, int]:
        plan = export.plan_export(target, spec, SYNC_DATE, "test-progress")
        result = export.export_chunk(target, spec, plan, 0)
        return str(get_run_context().task_run.id), result.rows

    @flow
    def progress_flow() -> tuple[str, int]:
        return export_venues()

    task_run_id, rows = progress_flow()

    async def artifacts() -> list[Any]:
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    task_run_id=ArtifactFilterTaskRunId(any_=[task_run_id])
                )
            )

    (artifact,) = asyncio.run(artifacts())
    assert artifact.type == "progress" and float(artifact.data) == 100.0
    assert artifact.key == "export-ph-venues-chunk-0"
    assert f"{rows:,} rows in the source" in artifact.description
