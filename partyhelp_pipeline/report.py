"""What a run tells people: each table's outcome, the errors named once, audit rows for
``ph_sync_runs``, the data-quality log lines, the markdown summary and the command's table.

The summary is read in the Prefect UI: it keeps its main table narrow (a 1400-pixel screen
shows it whole), sizes in KiB/MiB, each table's own work time, and links written as
``[text](url)`` only (the UI escapes the text of a bare URL, showing ``&amp;``); console links
on GCP, plain ``gs://`` text on the emulators, which have no console.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from partyhelp_pipeline.clock import iso, parse_iso, utc_now
from partyhelp_pipeline.health import HealthPage, TableHealth
from partyhelp_pipeline.health_report import CHART_DAYS, health_markdown
from partyhelp_pipeline.manifest import Manifest
from partyhelp_pipeline.warehouse.replace import LoadResult

CONSOLE = "https://console.cloud.google.com"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def named(subject: str, error: str) -> str:
    """``subject: error``, unless the error already starts with that name."""
    return error if error.startswith(subject) else f"{subject}: {error}"


def is_derivation(counter: str) -> bool:
    """A counter of values derived by design, as the README explains (an occasion label made
    from its key), not an anomaly of the source (zero dates, orphans, unreadable JSON)."""
    return counter.endswith("_derived")


def readable_bytes(size: int) -> str:
    """A size as people read it: ``512 B``, ``41.2 KiB``, ``3.4 MiB``, ``1.2 GiB``."""
    if size < 1024:
        return f"{size} B"
    value, units = size / 1024, ["KiB", "MiB", "GiB", "TiB"]
    while value >= 1024 and len(units) > 1:
        value, units = value / 1024, units[1:]
    return f"{value:.1f} {units[0]}"


def readable_seconds(seconds: float) -> str:
    """A duration as people read it: ``12.3 s``, ``4 min 05 s``, ``1 h 02 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


Span = tuple[dt.datetime, dt.datetime]


def busy_seconds(spans: list[Span]) -> float:
    """Seconds covered by ``spans``, an overlap counted once."""
    total, covered_to = 0.0, None
    for start, stop in sorted(spans):
        if covered_to is not None:
            start = max(start, covered_to)
        if stop > start:
            total += (stop - start).total_seconds()
            covered_to = stop
    return total


def work_spans(manifest: Manifest | None, load: LoadResult | None) -> list[Span]:
    """When a table's own steps ran: each export chunk, the manifest commit after the last
    chunk, and the load inside its publish lock (a wait for a slot or a lock is not work)."""
    spans = []
    if manifest is not None:
        spans = [
            (parse_iso(c["started_at"]), parse_iso(c["finished_at"]))
            for c in manifest.chunks
            if c.get("started_at") and c.get("finished_at")
        ]
        if spans and manifest.completed_at:
            spans.append((max(stop for _, stop in spans), parse_iso(manifest.completed_at)))
    if load is not None:
        spans.append((parse_iso(load.started_at), parse_iso(load.finished_at)))
    return spans


@dataclass
class TableOutcome:
    """How one table fared in a run."""

    table: str
    mode: str
    sync_date: dt.date
    started_at: str
    ended_at: str = ""
    manifest: Manifest | None = None
    load: LoadResult | None = None
    error: str | None = None
    health: TableHealth | None = None  # the day's metrics and anomalies, once published

    @property
    def status(self) -> str:
        """Completed or Failed."""
        return "Failed" if self.error or self.load is None else "Completed"

    @property
    def duration_seconds(self) -> float | None:
        """Seconds from the table's start in this run to its end, waits included."""
        if not (self.started_at and self.ended_at):
            return None
        return (parse_iso(self.ended_at) - parse_iso(self.started_at)).total_seconds()

    @property
    def work_seconds(self) -> float | None:
        """Seconds the table's own steps ran in this attempt, overlaps counted once; None when
        none ran. Every table starts with the run and waits for shared task slots, so the
        time since its start says little about the table itself."""
        spans = work_spans(self.manifest, self.load)
        if self.started_at:  # a replay's kept export, or one a retried run reused, ran before
            begun = parse_iso(self.started_at)
            spans = [(max(start, begun), stop) for start, stop in spans if stop > begun]
        return busy_seconds(spans) if spans else None

    def fail(self, error: BaseException | str) -> None:
        """Record the table's failure, named once with the table."""
        text = error if isinstance(error, str) else first_line(error)
        self.error = named(self.table, text)

    def end(self) -> None:
        """Record when the table's work ended."""
        self.ended_at = self.ended_at or iso(utc_now())

    def quality_log_lines(self) -> list[tuple[int, str]]:
        """(level, message) per kind of data-quality counter: anomalies of the source at
        WARNING, values derived as documented at INFO; each counter with example ids."""
        counts = _quality_counts(self.manifest)
        examples = self.manifest.quality.get("examples", {}) if self.manifest else {}

        def described(counters: list[str]) -> str:
            return ", ".join(
                f"{k}={counts[k]} (e.g. ids {_ids(examples.get(k, []))})" for k in counters
            )

        anomalies = sorted(k for k in counts if not is_derivation(k))
        derived = sorted(k for k in counts if is_derivation(k))
        lines = (
            [(logging.WARNING, f"{self.table} data quality: {described(anomalies)}")]
            if anomalies
            else []
        )
        if derived:
            lines.append((logging.INFO, f"{self.table} derived values: {described(derived)}"))
        return lines


@dataclass(frozen=True)
class Target:
    """Where a run writes, and whether the Google Cloud console can show it (the emulators
    have no console)."""

    project: str
    dataset: str
    console: bool

    def table_link(self, table: str) -> str:
        """The table, linked to its console page on GCP; its plain name otherwise."""
        name = f"{self.project}.{self.dataset}.{table}"
        if not self.console:
            return f"`{name}`"
        project = quote(self.project, safe="")
        return link(
            name,
            f"{CONSOLE}/bigquery?project={project}&ws=!1m5!1m4!4m3!1s{project}"
            f"!2s{self.dataset}!3s{table}",
        )

    def object_url(self, uri: str) -> str | None:
        """A ``gs://`` object's console page on GCP; None on the emulators."""
        if not self.console:
            return None
        bucket, _, name = uri.removeprefix("gs://").partition("/")
        path = quote(name, safe="/=")  # sync_date=YYYY-MM-DD folders stay readable
        return (
            f"{CONSOLE}/storage/browser/_details/{bucket}/{path}"
            f"?project={quote(self.project, safe='')}"
        )

    def object_link(self, uri: str) -> str:
        """A ``gs://`` object, linked to its console page on GCP; plain text otherwise."""
        url = self.object_url(uri)
        return link(uri, url) if url else f"`{uri}`"


def link(text: str, url: str) -> str:
    """A markdown link written ``[text](url)``: the Prefect UI shows its text and URL as
    given (a bare URL's text would show ``&`` as ``&amp;``)."""
    return f"[{text}]({url})"


@dataclass
class RunReport:
    """One run's outcomes, and what the run tells people and the command."""

    sync_date: dt.date
    mode: str
    outcomes: list[TableOutcome]
    views: list[str] = field(default_factory=list)  # refreshed
    view_errors: list[str] = field(default_factory=list)  # one line per failed refresh
    target: Target | None = None  # None: no links, no table references
    attempt: int = 1  # the flow run's run count: above 1 on a retry
    health_page: HealthPage | None = None  # the run's health page and its chart

    def failures(self) -> list[str]:
        """One line per failed table (and view), each naming it once."""
        lines = [o.error or f"{o.table}: failed" for o in self.outcomes if o.status == "Failed"]
        return lines + self.view_errors

    def markdown(self) -> str:
        """The run's markdown artifact."""
        return summary_markdown(self)

    def quality_log_lines(self) -> list[tuple[int, str]]:
        """Every table's data-quality log lines, (level, message)."""
        return [line for o in self.outcomes for line in o.quality_log_lines()]

    def audit_rows(self, flow_run_id: str | None) -> list[dict[str, Any]]:
        """The ``ph_sync_runs`` rows of this run."""
        return [audit_row(o, flow_run_id) for o in self.outcomes]

    def result(self) -> dict[str, Any]:
        """The flow's return value: per table its rows, manifest, state, own work time,
        source freshness and anomalies, and the views."""
        return {
            "sync_date": self.sync_date.isoformat(),
            "mode": self.mode,
            "tables": {
                o.table: {
                    "rows": o.load.rows_loaded if o.load else None,
                    "manifest": o.manifest.uri if o.manifest else None,
                    "current_replaced": o.load.current_replaced if o.load else None,
                    "state": o.status,
                    "seconds": _rounded(o.work_seconds),
                    "freshness": (o.manifest.freshness or {}).get("status") if o.manifest else None,
                    "anomalies": [c.metric for c in o.health.anomalies] if o.health else [],
                }
                for o in self.outcomes
            },
            "views": self.views,
        }


def _ids(ids: list[int]) -> str:
    return ", ".join(map(str, ids))


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


def _quality_counts(manifest: Manifest | None) -> dict[str, int]:
    return dict(manifest.quality.get("counts", {})) if manifest else {}


def zero_dates(counts: dict[str, int]) -> int:
    """Zero dates nulled, over every column."""
    return sum(v for k, v in counts.items() if k.startswith("zero_date_nulled"))


def orphans(counts: dict[str, int]) -> int:
    """Orphan rows, over every parent (a row missing two parents counts twice)."""
    return sum(v for k, v in counts.items() if k.startswith("orphan_"))


def audit_row(outcome: TableOutcome, flow_run_id: str | None) -> dict[str, Any]:
    """One ``ph_sync_runs`` row (JSON-ready)."""
    manifest, load = outcome.manifest, outcome.load
    counts = _quality_counts(manifest)
    return {
        "sync_date": outcome.sync_date.isoformat(),
        "flow_run_id": flow_run_id,
        "table_name": outcome.table,
        "mode": outcome.mode,
        "status": outcome.status,
        "export_id": manifest.export_id if manifest else None,
        "manifest_uri": manifest.uri if manifest else None,
        "source_rows": manifest.source_totals.get("row_count") if manifest else None,
        "rows_exported": manifest.rows if manifest else None,
        "rows_loaded": load.rows_loaded if load else None,
        "files": len(manifest.parts) if manifest else None,
        "bytes": manifest.bytes if manifest else None,
        "checksums": ",".join(p.crc32c for p in manifest.parts) if manifest else None,
        "zero_dates_nulled": zero_dates(counts) if manifest else None,
        "orphan_rows": orphans(counts) if manifest else None,
        "quality": json.dumps(manifest.quality, sort_keys=True) if manifest else None,
        "load_job_id": load.load_job_id if load else None,
        "copy_job_id": (load.copy_job_id or None) if load else None,
        "started_at": outcome.started_at or None,
        "ended_at": outcome.ended_at or None,
        "error": outcome.error,
        "current_replaced": load.current_replaced if load else None,
    }


# ------------------------------------------------------------------ the markdown summary


def summary_markdown(report: RunReport) -> str:
    """The run's markdown artifact: a narrow row per table, then failures, views, data
    quality, notes, and where each table's manifest, table and load job are."""
    outcomes = report.outcomes
    title = f"# Partyhelp -> BigQuery sync, {report.sync_date} ({report.mode})"
    lines = [title + (f", attempt {report.attempt}" if report.attempt > 1 else ""), ""]
    if report.attempt > 1:
        lines += [
            f"Attempt {report.attempt} of this flow run: work finished by an earlier "
            "attempt was reused, and its time is not counted here.",
            "",
        ]
    lines += [
        "| table | state | rows | files | size | work time | data quality |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    lines += [_table_row(o) for o in outcomes]
    lines += _section(
        "Failures",
        [_named_item(o.error or "failed", o.table) for o in outcomes if o.status == "Failed"],
    )
    lines += _section(
        "Views",
        [f"- `{view}`: refreshed" for view in report.views]
        + [_named_item(error, prefix="not refreshed: ") for error in report.view_errors],
    )
    lines += _freshness_section(outcomes) + _health_section(report)
    lines += _quality_section(outcomes)
    lines += _section(
        "Exports redone",
        [
            f"- {o.table}: export {o.manifest.replaces} was damaged in GCS (kept as evidence); "
            f"exported again from MySQL as {o.manifest.export_id}"
            for o in outcomes
            if o.manifest and o.manifest.replaces
        ],
    )
    lines += _section(
        "Row drops allowed",
        [
            f"- {o.table}: published {o.load.rows_loaded} rows, down from {o.load.previous_rows}, "
            "as --allow-row-drop asked"
            for o in outcomes
            if o.load and o.load.row_drop_allowed
        ],
    )
    lines += _section(
        "Current tables left alone",
        [
            f"- {o.table}: {o.sync_date} filled its history partition; the current table keeps "
            f"its newer day {o.load.current_day}"
            for o in outcomes
            if o.load and not o.load.current_replaced
        ],
    )
    lines += _section(
        "Where", [_where_line(o, report.target) for o in outcomes if o.manifest or o.load]
    )
    return "\n".join(lines) + "\n"


def _freshness_section(outcomes: list[TableOutcome]) -> list[str]:
    return _section(
        "Source freshness",
        [f"- {o.load.freshness_warning}" for o in outcomes if o.load and o.load.freshness_warning],
    )


def _health_section(report: RunReport) -> list[str]:
    measured = [o.health for o in report.outcomes if o.health is not None]
    if not measured:
        return []
    page, chart = report.health_page, []
    url = report.target.object_url(page.uri) if page and report.target else None
    if page:  # an image the UI draws; the page itself is kept beside the exports
        image = base64.b64encode(page.chart_svg.encode()).decode("ascii")
        alt = f"Rows added per day, last {CHART_DAYS} days"
        chart = ["", f"![{alt}](data:image/svg+xml;base64,{image})"]
        if not url:  # the emulators have no console: the object's name
            chart += ["", f"The health page: `{page.uri}`."]
    checks = {h.metrics.table_name: h.checks for h in measured}
    return ["", health_markdown([h.metrics for h in measured], checks, url), *chart]


def _named_item(error: str, subject: str = "", prefix: str = "") -> str:
    """``- **subject**: cause``, from an error that names its subject first."""
    if not subject:
        subject, _, error = error.partition(": ")
    return f"- **{subject}**: {prefix}{error.removeprefix(f'{subject}: ')}"


def _section(title: str, items: list[str]) -> list[str]:
    return ["", f"## {title}", "", *items] if items else []


def _table_row(o: TableOutcome) -> str:
    manifest, work = o.manifest, o.work_seconds
    cells = [
        o.table,
        o.status,
        f"{manifest.rows:,}" if manifest else "",
        str(len(manifest.parts)) if manifest else "",
        readable_bytes(manifest.bytes) if manifest else "",
        "" if work is None else readable_seconds(work),
        _quality_cell(_quality_counts(manifest)),
    ]
    return "| " + " | ".join(cells) + " |"


def _quality_cell(counts: dict[str, int]) -> str:
    anomalies = sum(v for k, v in counts.items() if not is_derivation(k))
    derived = sum(v for k, v in counts.items() if is_derivation(k))
    parts = (
        [f"{anomalies:,} {'anomaly' if anomalies == 1 else 'anomalies'}"] if anomalies else []
    ) + ([f"{derived:,} derived"] if derived else [])
    return ", ".join(parts) or "none"


def _quality_section(outcomes: list[TableOutcome]) -> list[str]:
    rows = []
    for o in outcomes:
        counts = _quality_counts(o.manifest)
        examples = o.manifest.quality.get("examples", {}) if o.manifest else {}
        for counter, count in sorted(counts.items(), key=lambda kv: (is_derivation(kv[0]), kv[0])):
            kind = "derived" if is_derivation(counter) else "anomaly"
            rows.append(
                f"| {o.table} | {counter} | {kind} | {count:,} | "
                f"{_ids(examples.get(counter, []))} |"
            )
    if not rows:
        return []
    return _section(
        "Data quality",
        [
            "Anomalies of the source are logged as warnings; values derived as the README "
            "explains (an occasion label from its key), as information.",
            "",
            "| table | counter | kind | rows | example ids |",
            "|---|---|---|---:|---|",
            *rows,
        ],
    )


def _where_line(o: TableOutcome, target: Target | None) -> str:
    place = target or Target("", "", console=False)
    items = [f"manifest {place.object_link(o.manifest.uri)}"] if o.manifest else []
    if target is not None:
        items.append(f"table {target.table_link(o.table)}")
    if o.load:
        jobs = ", ".join(f"`{job}`" for job in o.load.load_job_id.split(",") if job)
        items.append(f"load job {jobs}" if jobs else "")
    return f"- {o.table}: " + "; ".join(item for item in items if item)


def days_not_done(results: dict[str, str]) -> dict[str, str]:
    """The days of a backfill that were neither replayed nor synced, with why."""
    return {
        day: outcome for day, outcome in results.items() if outcome not in ("replayed", "synced")
    }
