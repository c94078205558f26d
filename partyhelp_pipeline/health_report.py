"""What people see of the data's health: a Markdown section for the run's summary artifact
(each table's rows added today against its usual range, its source freshness, its anomalies)
and a static HTML page with one chart (rows added per day per table over 90 days, the flagged
days marked).

Pure: the records in (``health.py``), text out. The page is self-contained (inline CSS and
SVG, no script, font or image), so it opens from a bucket or a disk as it is.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from partyhelp_pipeline.health import MetricCheck, TableMetrics

MIN_HISTORY_DAYS = 7  # the published days a table needs before its volume is judged
CHART_DAYS = 90
PAGE_TITLE = "Partyhelp sync health"
# Colours told apart by most people, also with the common colour-vision deficiencies.
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
    "#393b79",
)
ANOMALY_COLOUR = "#d62728"

# ------------------------------------------------------------------ the Markdown section


def health_markdown(
    today: Sequence[TableMetrics],
    checks: Mapping[str, Sequence[MetricCheck]],
    page_url: str | None = None,
    *,
    history_days: Mapping[str, int] | None = None,
    min_history_days: int = MIN_HISTORY_DAYS,
) -> str:
    """The summary artifact's "Data health" section: a row per table, then each anomaly."""
    lines = [
        "## Data health",
        "",
        "Rows added today against the table's usual range; an anomaly is a question for a "
        "person, not a failure of the run.",
        "",
        "| table | rows added | usual range | rows removed | source freshness | anomaly |",
        "|---|---:|---|---:|---|---|",
    ]
    messages: list[str] = []
    for metrics in today:
        table_checks = checks.get(metrics.table_name, ())
        known = (history_days or {}).get(metrics.table_name)
        lines.append(_markdown_row(metrics, table_checks, known, min_history_days))
        messages += _anomaly_messages(metrics, table_checks)
    if messages:
        lines += ["", "**Anomalies:**", "", *(f"- ⚠ {message}" for message in messages)]
    if page_url:
        lines += ["", f"[Chart: rows added per day, last {CHART_DAYS} days]({_url(page_url)})"]
    return "\n".join(lines) + "\n"


def _markdown_row(
    metrics: TableMetrics,
    table_checks: Sequence[MetricCheck],
    history_days: int | None,
    min_history_days: int,
) -> str:
    added = next((c for c in table_checks if c.metric == "rows_added"), None)
    flagged = flagged_metrics(metrics, table_checks)
    cells = [
        metrics.table_name,
        "first day" if metrics.rows_added is None else f"{metrics.rows_added:,}",
        _usual_range(metrics, added, history_days, min_history_days),
        "" if metrics.rows_removed is None else f"{metrics.rows_removed:,}",
        freshness_text(metrics),
        f"**⚠ anomaly: {', '.join(flagged)}**" if flagged else "",
    ]
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def _usual_range(
    metrics: TableMetrics,
    check: MetricCheck | None,
    history_days: int | None,
    min_history_days: int,
) -> str:
    if metrics.rows_added is None:
        return ""
    if check is not None and check.history_days >= min_history_days:
        return f"{number(check.low)}..{number(check.high)} (median {number(check.median)})"
    days = check.history_days if check is not None else history_days
    if days is None:
        return "building history"
    return f"building history ({days} of {min_history_days} days)"


def flagged_metrics(metrics: TableMetrics, table_checks: Sequence[MetricCheck]) -> list[str]:
    """The table's anomalies of the day: its flagged checks, then any other metric the day's
    record names (an anomaly judged elsewhere, or read back from ``ph_sync_metrics``)."""
    names = [check.metric for check in table_checks if check.flagged]
    return names + [name for name in metrics.anomalies if name not in names]


def _anomaly_messages(metrics: TableMetrics, table_checks: Sequence[MetricCheck]) -> list[str]:
    judged = {check.metric: check for check in table_checks if check.flagged}
    return [
        judged[name].message if name in judged else f"{metrics.table_name}: {name} flagged"
        for name in flagged_metrics(metrics, table_checks)
    ]


def freshness_text(metrics: TableMetrics) -> str:
    """``5.2 h, fresh (newest 2026-11-25 02:48 UTC)``: the source's age, status and newest
    value; ``n/a`` when the table has none."""
    parts = []
    if metrics.freshness_hours is not None:
        parts.append(hours_text(metrics.freshness_hours))
    if metrics.freshness_status:
        parts.append(metrics.freshness_status)
    text = ", ".join(parts) or "n/a"
    if metrics.newest_at is not None:
        text += f" (newest {utc_text(metrics.newest_at)})"
    return text


def hours_text(hours: float) -> str:
    """An age a person reads at a glance: ``5.2 h``, ``26 h``, ``3.1 days``."""
    if hours < 10:
        return f"{hours:.1f} h"
    if hours < 48:
        return f"{hours:.0f} h"
    return f"{hours / 24:.1f} days"


def utc_text(moment: dt.datetime) -> str:
    """``2026-11-25 02:48 UTC``; a naive time is taken as UTC, as the records keep them."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def number(value: float) -> str:
    """``1,234`` for a whole number, three significant digits otherwise."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3g}"


def _cell(text: str) -> str:
    # A pipe ends a Markdown table cell and a newline its row; a backslash would escape the
    # pipe's own escape.
    return " ".join(text.replace("\\", "\\\\").replace("|", "\\|").split())


def _url(url: str) -> str:
    # A space or parenthesis would end the link's target early.
    return url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")


# ------------------------------------------------------------------ the HTML page


@dataclass(frozen=True)
class _Frame:
    """The chart's geometry: the SVG's size, the plot inside its margins, the scales."""

    first_day: dt.date
    days: int
    y_max: float
    width: int = 960
    height: int = 380
    left: int = 70
    right: int = 50  # room for the last day's label
    top: int = 20
    bottom: int = 60

    def x(self, day: dt.date) -> float:
        span = self.width - self.left - self.right
        return round(self.left + span * (day - self.first_day).days / max(self.days - 1, 1), 1)

    def y(self, value: float) -> float:
        span = self.height - self.top - self.bottom
        return round(self.top + span * (1 - value / self.y_max), 1)

    @property
    def baseline(self) -> float:
        return self.y(0)


def health_page(
    history: Mapping[str, Sequence[TableMetrics]],
    sync_date: dt.date,
    title: str = PAGE_TITLE,
) -> str:
    """A static HTML page: rows added per day per table over the last 90 days up to
    ``sync_date``, the flagged days marked, and each table's latest source freshness."""
    windows, colours, frame = _chart_data(history, sync_date)
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f"<title>{_esc(title)}</title>",
            f"<style>{_CSS}</style>",
            "</head>",
            "<body>",
            f"<h1>{_esc(title)}</h1>",
            f'<p class="period">Rows added per published day, {_esc(frame.first_day.isoformat())} '
            f"to {_esc(sync_date.isoformat())}. Red rings mark the days with an anomaly; a "
            "gap is a day without a value.</p>",
            _svg(windows, colours, frame),
            _legend(colours),
            _freshness_table(history, sync_date),
            "</body>",
            "</html>",
            "",
        ]
    )


def chart_svg(history: Mapping[str, Sequence[TableMetrics]], sync_date: dt.date) -> str:
    """The page's chart alone, as an SVG document with its own style and legend: the summary
    artifact shows it as an image (the Prefect UI renders a ``data:`` SVG image, not inline
    SVG)."""
    windows, colours, frame = _chart_data(history, sync_date, top=44)  # room for the legend
    chart = _svg(windows, colours, frame)
    head, _, rest = chart.partition(">")
    return "".join([head, ">", f"<style>{_SVG_CSS}</style>", _svg_legend(colours, frame), rest])


_Windows = dict[str, dict[dt.date, TableMetrics]]


def _chart_data(
    history: Mapping[str, Sequence[TableMetrics]], sync_date: dt.date, top: int = 20
) -> tuple[_Windows, dict[str, str], _Frame]:
    """Each table's days in the chart's window, its colour, and the chart's frame."""
    first_day = sync_date - dt.timedelta(days=CHART_DAYS - 1)
    windows = {table: _window(rows, first_day, sync_date) for table, rows in history.items()}
    values = [m.rows_added for days in windows.values() for m in days.values() if m.rows_added]
    frame = _Frame(first_day, CHART_DAYS, _nice_ceiling(max(values, default=0)), top=top)
    colours = {table: PALETTE[i % len(PALETTE)] for i, table in enumerate(windows)}
    return windows, colours, frame


def _svg_legend(colours: Mapping[str, str], frame: _Frame) -> str:
    items, x = [], frame.left
    for table, colour in colours.items():
        items.append(
            f'<line x1="{x}" x2="{x + 16}" y1="16" y2="16" stroke="{colour}" stroke-width="3"/>'
            f'<text class="legend" x="{x + 20}" y="20">{_esc(table)}</text>'
        )
        x += 28 + 7 * len(table)
    items.append(
        f'<circle cx="{x + 6}" cy="16" r="5" fill="none" stroke="{ANOMALY_COLOUR}" '
        f'stroke-width="2.5"/><text class="legend" x="{x + 16}" y="20">anomaly</text>'
    )
    return '<g class="svg-legend">' + "".join(items) + "</g>"


_CHART_CSS = (  # the chart's own rules, in the page and in the SVG document alike
    ".grid line{stroke:#e5e5e5}.axis line,.axis path{stroke:#888}"
    ".axis text{font-size:11px;fill:#555}.axis-title{font-size:12px;fill:#333}"
    ".series path{fill:none;stroke-width:1.8}"
    "circle.anomaly{fill:none;stroke:" + ANOMALY_COLOUR + ";stroke-width:2.5}"
)

_SVG_CSS = (
    "svg{background:#fff}text{font-family:sans-serif}.legend{font-size:12px;fill:#333}" + _CHART_CSS
)

_CSS = (
    "body{font-family:system-ui,sans-serif;margin:24px;color:#222}"
    "h1{font-size:20px;margin:0 0 4px}p.period{margin:0 0 12px;color:#555}"
    "svg{display:block;background:#fff}"
    + _CHART_CSS
    + "ul.legend{list-style:none;padding:0;margin:8px 0 20px;display:flex;flex-wrap:wrap;gap:16px}"
    ".legend .swatch{display:inline-block;width:14px;height:4px;margin-right:6px;"
    "vertical-align:middle}"
    "table.freshness{border-collapse:collapse;font-size:13px}"
    ".freshness th,.freshness td{border:1px solid #ddd;padding:4px 8px;text-align:left}"
    ".freshness td.status-warn{color:#b36b00}.freshness td.status-stale{color:#d62728}"
)


def _window(
    rows: Sequence[TableMetrics], first_day: dt.date, last_day: dt.date
) -> dict[dt.date, TableMetrics]:
    # A day read twice (a rerun) keeps its last record, as ph_sync_metrics keeps one a day.
    days = {m.sync_date: m for m in rows if first_day <= m.sync_date <= last_day}
    return dict(sorted(days.items()))


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value``: a round axis top."""
    if value <= 0:
        return 1
    power = 10.0 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def _svg(
    windows: Mapping[str, Mapping[dt.date, TableMetrics]],
    colours: Mapping[str, str],
    frame: _Frame,
) -> str:
    parts = [
        f'<svg id="rows-added-chart" xmlns="http://www.w3.org/2000/svg" width="{frame.width}" '
        f'height="{frame.height}" viewBox="0 0 {frame.width} {frame.height}" role="img" '
        'aria-label="Rows added per day per table">',
        *_axes(frame),
        *(_series(table, days, colours[table], frame) for table, days in windows.items()),
        *(_anomaly_markers(table, days, frame) for table, days in windows.items()),
        "</svg>",
    ]
    return "\n".join(parts)


def _axes(frame: _Frame) -> list[str]:
    x_end, bottom = frame.width - frame.right, frame.baseline
    parts = ['<g class="grid">']
    y_ticks = [frame.y_max * i / 5 for i in range(6)]
    parts += [
        f'<line x1="{frame.left}" x2="{x_end}" y1="{frame.y(v)}" y2="{frame.y(v)}"/>'
        for v in y_ticks
    ]
    parts += ["</g>", '<g class="axis y-axis">']
    parts += [
        f'<text class="y-label" x="{frame.left - 8}" y="{frame.y(v) + 4}" '
        f'text-anchor="end">{_esc(number(v))}</text>'
        for v in y_ticks
    ]
    parts += [
        f'<line x1="{frame.left}" x2="{frame.left}" y1="{frame.top}" y2="{bottom}"/>',
        "</g>",
        '<g class="axis x-axis">',
        f'<line x1="{frame.left}" x2="{x_end}" y1="{bottom}" y2="{bottom}"/>',
    ]
    # A label every two weeks, counted back from the last day: the day people look for.
    for offset in reversed(range(frame.days - 1, -1, -14)):
        parts += _x_tick(frame, frame.first_day + dt.timedelta(days=offset))
    mid_y = (frame.top + bottom) / 2
    parts += [
        "</g>",
        f'<text class="axis-title" x="{(frame.left + x_end) / 2}" y="{frame.height - 8}" '
        'text-anchor="middle">published day</text>',
        f'<text class="axis-title" x="16" y="{mid_y}" text-anchor="middle" '
        f'transform="rotate(-90 16 {mid_y})">rows added</text>',
    ]
    return parts


def _x_tick(frame: _Frame, day: dt.date) -> list[str]:
    x, bottom = frame.x(day), frame.baseline
    return [
        f'<line x1="{x}" x2="{x}" y1="{bottom}" y2="{bottom + 5}"/>',
        f'<text class="x-label" x="{x}" y="{bottom + 18}" text-anchor="middle">'
        f"{_esc(day.isoformat())}</text>",
    ]


def _series(table: str, days: Mapping[dt.date, TableMetrics], colour: str, frame: _Frame) -> str:
    """A table's line, broken where a day has no value, and a point on each day with one."""
    runs: list[list[tuple[dt.date, int]]] = []
    previous: dt.date | None = None
    for day, metrics in days.items():
        if metrics.rows_added is None:
            previous = None
            continue
        if previous is None or (day - previous).days != 1:
            runs.append([])
        runs[-1].append((day, metrics.rows_added))
        previous = day
    path = " ".join(
        "M" + " L".join(f"{frame.x(day)},{frame.y(value)}" for day, value in run) for run in runs
    )
    points = [
        f'<circle class="point" data-day="{day.isoformat()}" cx="{frame.x(day)}" '
        f'cy="{frame.y(value)}" r="2.5" fill="{colour}"><title>'
        f"{_esc(f'{table}, {day.isoformat()}: {value:,} rows added')}</title></circle>"
        for run in runs
        for day, value in run
    ]
    return "\n".join(
        [
            f'<g class="series" data-table="{_esc(table)}" stroke="{colour}">',
            f'<path d="{path}"/>' if path else "",
            *points,
            "</g>",
        ]
    )


def _anomaly_markers(table: str, days: Mapping[dt.date, TableMetrics], frame: _Frame) -> str:
    """A red ring on each flagged day: at its value, or on the axis when it has none."""
    markers = []
    for day, metrics in days.items():
        if not metrics.anomalies:
            continue
        value = metrics.rows_added
        y = frame.y(value) if value is not None else frame.baseline
        what = f"{table}, {day.isoformat()}: anomaly in {', '.join(metrics.anomalies)}"
        if value is not None:
            what += f" ({value:,} rows added)"
        markers.append(
            f'<circle class="anomaly" data-table="{_esc(table)}" data-day="{day.isoformat()}" '
            f'data-metrics="{_esc(",".join(metrics.anomalies))}" cx="{frame.x(day)}" cy="{y}" '
            f'r="7"><title>{_esc(what)}</title></circle>'
        )
    return "\n".join(markers)


def _legend(colours: Mapping[str, str]) -> str:
    items = [
        f'<li class="legend-item" data-table="{_esc(table)}"><span class="swatch" '
        f'style="background:{colour}"></span>{_esc(table)}</li>'
        for table, colour in colours.items()
    ]
    items.append(
        f'<li class="legend-item legend-anomaly"><span class="swatch" '
        f'style="background:{ANOMALY_COLOUR}"></span>anomaly (a flagged day)</li>'
    )
    return '<ul class="legend">' + "".join(items) + "</ul>"


def _freshness_table(history: Mapping[str, Sequence[TableMetrics]], sync_date: dt.date) -> str:
    """Each table's latest source freshness, as of its last published day up to
    ``sync_date``."""
    rows = []
    for table, records in history.items():
        published = [m for m in records if m.sync_date <= sync_date]
        if not published:
            continue
        latest = max(published, key=lambda m: m.sync_date)
        status = latest.freshness_status or "n/a"
        age = latest.freshness_hours
        cells = [
            f"<td>{_esc(table)}</td>",
            f"<td>{_esc(latest.sync_date.isoformat())}</td>",
            f"<td>{_esc(latest.freshness_column or '')}</td>",
            f"<td>{_esc(utc_text(latest.newest_at) if latest.newest_at else '')}</td>",
            f"<td>{_esc(hours_text(age) if age is not None else '')}</td>",
            f'<td class="status-{_esc(status)}">{_esc(status)}</td>',
        ]
        rows.append(f'<tr data-table="{_esc(table)}">' + "".join(cells) + "</tr>")
    return (
        '<h2>Source freshness</h2><table class="freshness" id="freshness"><thead><tr>'
        "<th>table</th><th>as of</th><th>column</th><th>newest value</th><th>age</th>"
        "<th>status</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _esc(text: str) -> str:
    return html.escape(text, quote=True)
