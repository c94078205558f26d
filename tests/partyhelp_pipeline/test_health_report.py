"""What people see of the data's health: the summary artifact's Markdown rows, and the health
page rendered in a real browser, Debian's chromium (``/usr/bin/chromium``, installed by
``scripts/stack.sh install --with-browser``) driven by Playwright's Python package, launched as
tests/scenarios/test_ui_retry.py launches it. Nothing here downloads a browser."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

from partyhelp_pipeline.health import MetricCheck, TableMetrics
from partyhelp_pipeline.health_report import chart_svg, health_markdown, health_page
from tests.browser import chromium_page

if TYPE_CHECKING:
    from playwright.sync_api import Page

SYNC_DATE = dt.date(2026, 11, 25)
UTC = dt.UTC


def metrics(table: str, day: dt.date, rows_added: int | None, **fields: Any) -> TableMetrics:
    return TableMetrics(
        sync_date=day, table_name=table, rows=10_000, rows_added=rows_added, **fields
    )


def check(
    table: str, metric: str, value: float, usual: tuple[float, float, float], **kw: Any
) -> MetricCheck:
    low, median, high = usual
    return MetricCheck(
        table, metric, value, median, low, high, **{"history_days": 28, "same_weekday": True, **kw}
    )


# ------------------------------------------------------------------ the Markdown section


def test_the_summary_shows_each_table_against_its_usual_range_and_marks_anomalies() -> None:
    newest = dt.datetime(2026, 11, 24, 21, 48, tzinfo=UTC)
    today = [
        metrics(
            "ph_leads",
            SYNC_DATE,
            120,
            rows_removed=0,
            freshness_hours=5.2,
            freshness_status="fresh",
            newest_at=newest,
        ),
        metrics(
            "ph_purchases",
            SYNC_DATE,
            0,
            rows_removed=2,
            freshness_hours=30.4,
            freshness_status="warn",
            newest_at=newest - dt.timedelta(hours=25),
            anomalies=("rows_added",),
        ),
        metrics("ph_venues", SYNC_DATE, None, freshness_status="unknown"),
        metrics("ph_lead_matches", SYNC_DATE, 12, rows_removed=1, freshness_status="off"),
        metrics("ph_odd|name", SYNC_DATE, 7, rows_removed=0, anomalies=("null_rate.note",)),
    ]
    checks = {
        "ph_leads": [check("ph_leads", "rows_added", 120, (80, 110, 150))],
        "ph_purchases": [
            check("ph_purchases", "rows_added", 0, (40, 61, 90), flagged=True),
            check("ph_purchases", "freshness_hours", 30.4, (2, 6, 36), same_weekday=False),
        ],
    }
    lines = health_markdown(today, checks, history_days={"ph_lead_matches": 3}).splitlines()
    header = lines.index(
        "| table | rows added | usual range | rows removed | source freshness | anomaly |"
    )
    assert lines[0] == "## Data health"
    assert lines[header + 2 : header + 7] == [
        "| ph_leads | 120 | 80..150 (median 110) | 0 | 5.2 h, fresh (newest 2026-11-24 21:48 UTC) "
        "|  |",
        "| ph_purchases | 0 | 40..90 (median 61) | 2 | 30 h, warn (newest 2026-11-23 20:48 UTC) "
        "| **⚠ anomaly: rows_added** |",
        "| ph_venues | first day |  |  | unknown |  |",
        "| ph_lead_matches | 12 | building history (3 of 7 days) | 1 | off |  |",
        "| ph_odd\\|name | 7 | building history | 0 | n/a | **⚠ anomaly: null_rate.note** |",
    ]
    assert lines[header + 7 :] == [
        "",
        "**Anomalies:**",
        "",
        "- ⚠ ph_purchases: rows_added is 0, outside its usual range 40..90 (median 61 of 28 "
        "published days, the same weekday)",
        "- ⚠ ph_odd|name: null_rate.note flagged",
    ]


def test_a_check_on_a_short_history_reads_as_building_history_and_the_page_is_linked() -> None:
    today = [metrics("ph_leads", SYNC_DATE, 1_500, rows_removed=0)]
    short = {
        "ph_leads": [check("ph_leads", "rows_added", 1_500, (1_500, 1_500, 1_500), history_days=4)]
    }
    text = health_markdown(today, short, page_url="gs://exports/health/2026-11-25 page (1).html")
    assert "| ph_leads | 1,500 | building history (4 of 7 days) | 0 | n/a |  |" in text.splitlines()
    assert "**Anomalies:**" not in text
    assert text.endswith(
        "\n[Chart: rows added per day, last 90 days](gs://exports/health/2026-11-25%20page%20%281%29.html)\n"
    )


def test_the_page_escapes_every_text() -> None:
    hostile = '<img src=x onerror="alert(1)">&'
    page = health_page(
        {
            hostile: [
                metrics(hostile, SYNC_DATE, 3, anomalies=("<b>rows</b>",), freshness_column="<u>")
            ]
        },
        SYNC_DATE,
        title="<script>alert(1)</script>",
    )
    assert "<img" not in page and "<script" not in page and "<b>" not in page and "<u>" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# ------------------------------------------------------------------ the page in a browser


def day(offset: int) -> dt.date:
    """The chart's ``offset``-th day: 0 is its first, 89 is ``SYNC_DATE``."""
    return SYNC_DATE - dt.timedelta(days=89 - offset)


def synthetic_history() -> dict[str, list[TableMetrics]]:
    """Three tables over the chart's 90 days: a weekly pattern with two flagged days and days
    before the window; one with missing days, days without a value and a flagged day without
    one; one that started 30 days ago."""
    leads = [
        metrics("ph_leads", day(i), 100 + (40 if day(i).weekday() in (4, 5) else 0))
        for i in range(-10, 90)
    ]
    leads[10 + 30] = metrics("ph_leads", day(30), 1_400, anomalies=("rows_added",))
    leads[10 + 89] = metrics(
        "ph_leads",
        day(89),
        1_000,
        anomalies=("rows_added", "freshness_hours"),
        freshness_column="created_at",
        newest_at=dt.datetime(2026, 11, 24, 21, 48, tzinfo=UTC),
        freshness_hours=5.2,
        freshness_status="fresh",
    )
    purchases = []
    for i in range(90):
        if 10 <= i <= 14:
            continue  # not published
        value = None if 50 <= i <= 52 else 40 + i % 7 * 5
        flagged = ("rows_added",) if i == 20 else ("freshness_hours",) if i == 51 else ()
        purchases.append(
            metrics("ph_purchases", day(i), 0 if i == 20 else value, anomalies=flagged)
        )
    purchases[-1] = metrics(
        "ph_purchases",
        day(89),
        70,
        freshness_column="updated_at",
        newest_at=dt.datetime(2026, 11, 23, 20, 0, tzinfo=UTC),
        freshness_hours=30.4,
        freshness_status="warn",
    )
    venues = [metrics("ph_venues", day(60), None, freshness_status="unknown")]
    venues += [
        metrics("ph_venues", day(i), i % 3, anomalies=("null_rate.capacity",) if i == 75 else ())
        for i in range(61, 90)
    ]
    return {"ph_leads": leads, "ph_purchases": purchases, "ph_venues": venues}


def test_the_chart_alone_is_an_svg_document_with_its_style_and_legend() -> None:
    """The summary's image: the page's chart, standalone (the browser test of the image in
    the Prefect UI is tests/tasks/test_health.py)."""
    svg = chart_svg(synthetic_history(), SYNC_DATE)
    assert svg.startswith('<svg id="rows-added-chart" xmlns="http://www.w3.org/2000/svg"')
    assert svg.endswith("</svg>") and svg.count("<svg") == 1
    assert "<style>" in svg and "<script" not in svg
    for table in ("ph_leads", "ph_purchases", "ph_venues"):
        assert 'class="legend" x="' in svg and f">{table}</text>" in svg
    assert svg.count('<circle class="anomaly"') == 5  # as on the page


def test_the_health_page_draws_each_table_and_marks_exactly_the_flagged_days(
    tmp_path: Path,
) -> None:
    page_file = tmp_path / "health.html"
    page_file.write_text(health_page(synthetic_history(), SYNC_DATE), encoding="utf-8")
    errors: list[str] = []
    with chromium_page() as page:
        page.on(
            "console",
            lambda message: errors.append(message.text) if message.type == "error" else None,
        )
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(page_file.as_uri())
        page.screenshot(path=tmp_path / "health.png", full_page=True)

        assert page.locator("g.series").count() == 3
        assert points(page, "ph_leads") == [day(i).isoformat() for i in range(90)]
        assert points(page, "ph_purchases") == [
            day(i).isoformat() for i in range(90) if not 10 <= i <= 14 and not 50 <= i <= 52
        ]
        assert points(page, "ph_venues") == [day(i).isoformat() for i in range(61, 90)]
        # A gap breaks the line: one stroke a run of days with values.
        assert [subpaths(page, t) for t in ("ph_leads", "ph_purchases", "ph_venues")] == [1, 3, 1]

        assert anomaly_days(page) == {
            ("ph_leads", day(30).isoformat()),
            ("ph_leads", day(89).isoformat()),
            ("ph_purchases", day(20).isoformat()),
            ("ph_purchases", day(51).isoformat()),
            ("ph_venues", day(75).isoformat()),
        }
        assert_markers_visible_on_their_days(page)
        assert page.locator('circle.anomaly[data-day="2026-11-25"] title').text_content() == (
            "ph_leads, 2026-11-25: anomaly in rows_added, freshness_hours (1,000 rows added)"
        )
        legend = page.locator(".legend-item[data-table]")
        assert legend.all_inner_texts() == ["ph_leads", "ph_purchases", "ph_venues"]
        assert all(item.is_visible() for item in legend.all())
        dates = [day(i).isoformat() for i in (5, 19, 33, 47, 61, 75, 89)]
        assert page.locator("g.x-axis text.x-label").all_text_contents() == dates
        assert freshness_rows(page) == [
            ["ph_leads", "2026-11-25", "created_at", "2026-11-24 21:48 UTC", "5.2 h", "fresh"],
            ["ph_purchases", "2026-11-25", "updated_at", "2026-11-23 20:00 UTC", "30 h", "warn"],
            ["ph_venues", "2026-11-25", "", "", "", "n/a"],
        ]
    assert errors == []


def points(page: Page, table: str) -> list[str]:
    days = page.locator(f'g.series[data-table="{table}"] circle.point')
    return [str(d.get_attribute("data-day")) for d in days.all()]


def subpaths(page: Page, table: str) -> int:
    path = page.locator(f'g.series[data-table="{table}"] path').get_attribute("d") or ""
    return path.count("M")


def anomaly_days(page: Page) -> set[tuple[str, str]]:
    markers = page.locator("circle.anomaly").all()
    found = [
        (str(m.get_attribute("data-table")), str(m.get_attribute("data-day"))) for m in markers
    ]
    assert len(found) == len(set(found))
    return set(found)


def assert_markers_visible_on_their_days(page: Page) -> None:
    """Each marker is drawn, inside the chart, centred on its day's point (or on the axis for
    a day without a value)."""
    chart = page.locator("svg#rows-added-chart").bounding_box()
    axis_y = float(page.locator("g.x-axis > line").first.get_attribute("y1") or 0)
    assert chart is not None
    for marker in page.locator("circle.anomaly").all():
        box = marker.bounding_box()
        assert marker.is_visible() and box is not None and box["width"] > 0 and box["height"] > 0
        assert chart["x"] <= box["x"] and box["x"] + box["width"] <= chart["x"] + chart["width"]
        assert chart["y"] <= box["y"] and box["y"] + box["height"] <= chart["y"] + chart["height"]
        table, when = marker.get_attribute("data-table"), marker.get_attribute("data-day")
        point = page.locator(f'g.series[data-table="{table}"] circle.point[data-day="{when}"]')
        centre = (marker.get_attribute("cx"), marker.get_attribute("cy"))
        if point.count():
            assert centre == (point.get_attribute("cx"), point.get_attribute("cy"))
        else:
            assert float(centre[1] or 0) == axis_y


def freshness_rows(page: Page) -> list[list[str]]:
    rows = page.locator("table#freshness tbody tr").all()
    return [[cell.strip() for cell in row.locator("td").all_inner_texts()] for row in rows]
