"""What a run tells people: each table's outcome, the errors named once, audit rows for
``ph_sync_runs``, the markdown summary and the command's result."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from partyhelp_pipeline.clock import iso, parse_iso, utc_now
from partyhelp_pipeline.manifest import Manifest
from partyhelp_pipeline.warehouse import LoadResult


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def named(subject: str, error: str) -> str:
    """``subject: error``, unless the error already starts with that name."""
    return error if error.startswith(subject) else f"{subject}: {error}"


@dataclass
class TableOutcome:
    """How one table fared in a run."""

    table: str
    mode: str
    sync_date: str
    started_at: str
    ended_at: str = ""
    manifest: Manifest | None = None
    load: LoadResult | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """Completed or Failed."""
        return "Failed" if self.error or self.load is None else "Completed"

    @property
    def duration_seconds(self) -> float | None:
        """Seconds from export start to load end, when both are known."""
        if not (self.started_at and self.ended_at):
            return None
        return (parse_iso(self.ended_at) - parse_iso(self.started_at)).total_seconds()

    def fail(self, error: BaseException | str) -> None:
        """Record the table's failure, named once with the table."""
        text = error if isinstance(error, str) else first_line(error)
        self.error = named(self.table, text)

    def end(self) -> None:
        """Record when the table's work ended."""
        self.ended_at = self.ended_at or iso(utc_now())

    def quality_line(self) -> str | None:
        """The data-quality counters with example ids, or None when there are none."""
        counts = _quality_counts(self.manifest)
        if not counts or self.manifest is None:
            return None
        examples = self.manifest.quality.get("examples", {})
        return ", ".join(f"{k}={v} (e.g. ids {', '.join(map(str, examples.get(k, [])))})"
                         for k, v in sorted(counts.items()))


@dataclass
class RunReport:
    """One run's outcomes, and what the run tells people and the command."""

    sync_date: str
    mode: str
    outcomes: list[TableOutcome]
    view: str | None = None
    view_error: str | None = None

    def failures(self) -> list[str]:
        """One line per failed table (and view), each naming it once."""
        lines = [o.error or f"{o.table}: failed" for o in self.outcomes if o.status == "Failed"]
        return lines + ([self.view_error] if self.view_error else [])

    def markdown(self) -> str:
        """The run's markdown artifact."""
        return summary_markdown(self.sync_date, self.mode, self.outcomes, self.view)

    def audit_rows(self, flow_run_id: str | None) -> list[dict[str, Any]]:
        """The ``ph_sync_runs`` rows of this run."""
        return [audit_row(o, flow_run_id) for o in self.outcomes]

    def result(self) -> dict[str, Any]:
        """The flow's return value: rows and manifest per table, and the view."""
        return {
            "sync_date": self.sync_date,
            "mode": self.mode,
            "tables": {o.table: {"rows": o.load.rows_loaded if o.load else None,
                                 "manifest": o.manifest.uri if o.manifest else None}
                       for o in self.outcomes},
            "view": self.view,
        }


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
        "sync_date": outcome.sync_date,
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
        "copy_job_id": load.copy_job_id if load else None,
        "started_at": outcome.started_at or None,
        "ended_at": outcome.ended_at or None,
        "error": outcome.error,
    }


def _https_console_link(uri: str) -> str:
    bucket, _, name = uri[5:].partition("/")
    return f"https://console.cloud.google.com/storage/browser/_details/{bucket}/{name}"


def summary_markdown(sync_date: str, mode: str, outcomes: list[TableOutcome],
                     view: str | None) -> str:
    """The run's markdown artifact: a row per table, quality counts and manifest links."""
    lines = [
        f"# Partyhelp -> BigQuery sync, {sync_date} ({mode})",
        "",
        "| table | status | rows | files | bytes | duration s | load job | data quality |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for o in outcomes:
        counts = _quality_counts(o.manifest)
        quality = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "none"
        duration = o.duration_seconds
        lines.append(
            f"| {o.table} | {o.status} | {o.manifest.rows if o.manifest else ''} | "
            f"{len(o.manifest.parts) if o.manifest else ''} | "
            f"{o.manifest.bytes if o.manifest else ''} | "
            f"{'' if duration is None else f'{duration:.1f}'} | "
            f"{o.load.load_job_id if o.load else ''} | {quality} |")
    lines += ["", "## Manifests", ""]
    for o in outcomes:
        if o.manifest:
            lines.append(f"- {o.table}: [{o.manifest.uri}]({_https_console_link(o.manifest.uri)})")
    redone = [o for o in outcomes if o.manifest and o.manifest.replaces]
    if redone:
        lines += ["", "## Exports redone", ""]
        lines += [f"- {o.table}: export {o.manifest.replaces} was damaged in GCS (kept as "
                  f"evidence); exported again from MySQL as {o.manifest.export_id}"
                  for o in redone if o.manifest]
    allowed = [o for o in outcomes if o.load and o.load.row_drop_allowed]
    if allowed:
        lines += ["", "## Row drops allowed", ""]
        lines += [f"- {o.table}: published {o.load.rows_loaded} rows, down from "
                  f"{o.load.previous_rows}, as --allow-row-drop asked" for o in allowed if o.load]
    failed = [o for o in outcomes if o.status == "Failed"]
    if failed:
        lines += ["", "## Failures", ""]
        lines += [f"- **{o.table}**: {o.error}" for o in failed]
    if view:
        lines += ["", f"View refreshed: `{view}`"]
    examples = {o.table: o.manifest.quality.get("examples", {}) for o in outcomes
                if o.manifest and o.manifest.quality.get("examples")}
    if examples:
        lines += ["", "## Example row ids per data-quality counter", ""]
        for table, by_counter in examples.items():
            for counter, ids in sorted(by_counter.items()):
                lines.append(f"- {table} / {counter}: {', '.join(map(str, ids))}")
    return "\n".join(lines) + "\n"
