"""tasks/health.py on the real stack (issue 21, sections 2 and 3): a real sync measures each
published table into ``ph_sync_metrics``, judges it against the table's history and raises
an anomaly as a warning, a Prefect event and a mark in the summary; the health page lands
next to the exports; the metrics keep one row per table per day across reruns and replays.

The history before the first real day is synthetic: 28 days written with the table's own
metrics of that day, a venue or two added each day. Then the source's venues are copied
nine times over (the same NULLs, ten times the rows): ten times the usual, and nothing else.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from partyhelp_pipeline.health import ANOMALY_EVENT
from partyhelp_pipeline.settings import Settings
from partyhelp_pipeline.warehouse import metrics
from partyhelp_pipeline.warehouse.target import open_warehouse
from tasks.health import PAGE_NAME, health_folder
from tests import faultkit
from tests.faultkit import Source, environment, flow_run_record, new_target, sync_on
from tests.prefect_api import api_auth

pytestmark = pytest.mark.services

FIRST, SECOND = dt.date(2026, 11, 24), dt.date(2026, 11, 25)
TABLE = "ph_venues"


@pytest.fixture(scope="module")
def synced(stack: None) -> Iterator[dict[str, Any]]:
    """A first real day, 28 synthetic days before it, then a second day with ten times the
    usual venues added; the runs' final states and the settings."""
    with faultkit.source_database("ph_health", scale=0.02, seed=11, edge_cases=False) as source:
        env = new_target(source, "health", PARTYHELP_MAX_SOURCE_AGE_HOURS="0")
        with environment(env) as settings:
            first = sync_on(FIRST, tables=[TABLE])
            assert first.is_completed(), first.message
            seed_history(settings)
            copy_venues(source, times=9)
            second = sync_on(SECOND, tables=[TABLE])
            assert second.is_completed(), second.message
            yield {"first": first, "second": second, "settings": settings, "source": source}


def seed_history(settings: Settings) -> None:
    """28 days before ``FIRST``, each the first day's metrics with 1 or 2 venues added (2 at
    weekends) and none removed."""
    warehouse = open_warehouse(settings)
    (real,) = metrics.metrics_history(warehouse, TABLE, SECOND, 1)
    for back in range(1, 29):
        day = FIRST - dt.timedelta(days=back)
        added = 2 if day.weekday() >= 5 else 1
        metrics.write_metrics(
            warehouse,
            dataclasses.replace(real, sync_date=day, rows_added=added, rows_removed=0),
        )


def copy_venues(source: Source, times: int) -> None:
    """Each venue ``times`` more, under new ids: ten times the usual added, same NULL rates."""
    columns = [row[0] for row in source.sql("SHOW COLUMNS FROM venues") if row[0] != "id"]
    listed = ", ".join(f"`{c}`" for c in columns)
    top = int(source.scalar("SELECT MAX(id) FROM venues"))
    for copy in range(1, times + 1):
        source.sql(
            f"INSERT INTO venues (id, {listed}) SELECT id + %s, {listed} FROM venues "
            "WHERE id <= %s",
            (copy * top, top),
        )


def test_ten_times_the_usual_is_flagged_alone(synced: dict[str, Any]) -> None:
    result = synced["second"].result()["tables"][TABLE]
    assert result["anomalies"] == ["rows_added"]
    (row,) = metrics.metrics_history(
        open_warehouse(synced["settings"]), TABLE, SECOND + dt.timedelta(days=1), 1
    )
    venues = int(synced["source"].scalar("SELECT COUNT(*) FROM venues"))
    assert (row.rows, row.rows_added, row.rows_removed) == (venues, venues * 9 // 10, 0)
    assert row.anomalies == ("rows_added",)


def test_the_anomaly_is_a_warning_an_event_and_a_mark_in_the_summary(
    synced: dict[str, Any],
) -> None:
    run_id = synced["second"].state_details.flow_run_id
    line = f"anomaly: {TABLE}: rows_added is "
    record = flow_run_record(run_id, final_log=line)  # logs reach the API a moment later
    warned = [m for m in record.messages() if m.startswith(line)]
    assert len(warned) == 1 and "outside its usual range" in warned[0], warned
    summary = next(a.data for a in record.artifacts if a.key == "partyhelp-sync-summary")
    assert "## Data health" in summary and "⚠ anomaly: rows_added" in summary
    events = anomaly_events(str(run_id))
    assert [
        (e["resource"]["prefect.resource.id"], e["resource"]["partyhelp.metric"]) for e in events
    ] == [(f"partyhelp.table.{TABLE}", "rows_added")]
    assert events[0]["payload"]["sync_date"] == SECOND.isoformat()


def anomaly_events(flow_run_id: str, wait_seconds: float = 20) -> list[dict[str, Any]]:
    """The ``partyhelp.sync.anomaly`` events related to the flow run, as the Prefect API
    holds them (they reach it a moment after they are emitted)."""
    from prefect.settings import PREFECT_API_URL

    body = {
        "filter": {
            "event": {"name": [ANOMALY_EVENT]},
            "related": {"resources_in_roles": [[f"prefect.flow-run.{flow_run_id}", "flow-run"]]},
        },
        "limit": 50,
    }
    deadline = time.monotonic() + wait_seconds
    while True:
        response = httpx.post(
            f"{PREFECT_API_URL.value()}/events/filter", json=body, auth=api_auth(), timeout=10
        )
        response.raise_for_status()
        events: list[dict[str, Any]] = response.json()["events"]
        if events or time.monotonic() > deadline:
            return events
        time.sleep(0.5)


def test_the_health_page_lands_next_to_the_exports(synced: dict[str, Any]) -> None:
    settings = synced["settings"]
    name = f"{health_folder(settings.gcs_prefix, SECOND)}/{PAGE_NAME}"
    page = faultkit.bucket_objects(settings, name)[name].decode()
    assert page.startswith("<!DOCTYPE html>")
    assert f'data-table="{TABLE}"' in page
    assert f'class="anomaly" data-table="{TABLE}" data-day="{SECOND.isoformat()}"' in page


def test_reruns_and_replays_keep_one_row_per_table_per_day(synced: dict[str, Any]) -> None:
    settings = synced["settings"]
    again = sync_on(SECOND, tables=[TABLE])  # the module's settings are still in force
    assert again.is_completed(), again.message
    replayed = sync_on(FIRST, tables=[TABLE], from_exports=True)
    assert replayed.is_completed(), replayed.message
    rows = faultkit.query(
        settings,
        f"SELECT sync_date, table_name, mode, COUNT(*) AS n FROM "
        f"`{settings.bq_dataset}.ph_sync_metrics` GROUP BY 1, 2, 3",
    )
    per_day = {(r["sync_date"], r["mode"]): r["n"] for r in rows}
    assert per_day[(FIRST, "replay")] == per_day[(SECOND, "sync")] == 1
    assert len(rows) == 30  # 28 synthetic days and the two real ones, one row each


def test_the_summary_shows_the_chart_in_the_prefect_ui(synced: dict[str, Any]) -> None:
    """The artifact's chart, as a person sees it: the Prefect UI in a real Chromium draws the
    summary's ``data:`` SVG image at its full size."""
    from tests.browser import chromium_page, log_in_to_prefect
    from tests.scenarios.test_ui_retry import ui_url

    record = flow_run_record(synced["second"].state_details.flow_run_id)
    summary = next(a for a in record.artifacts if a.key == "partyhelp-sync-summary")
    with chromium_page() as page:
        log_in_to_prefect(page, ui_url())  # CI's server asks for its auth string
        page.goto(f"{ui_url()}/artifacts/artifact/{summary.id}")
        chart = page.locator('img[alt="Rows added per day, last 90 days"]')
        chart.wait_for(state="visible")
        drawn = chart.evaluate("img => [img.complete, img.naturalWidth, img.naturalHeight]")
        box = chart.bounding_box()
    assert drawn == [True, 960, 380]
    assert box is not None and box["width"] > 300 and box["height"] > 100
