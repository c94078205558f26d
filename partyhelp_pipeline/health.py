"""What a run knows about its data beyond "it loaded": one table's metrics for one day (a row
of ``ph_sync_metrics``) and the anomalies flagged in them.

These are plain records: the warehouse measures and stores them
(``warehouse/metrics.py``), ``anomalies.py`` judges them against the table's history, and
the report and the health page show them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ANOMALY_EVENT = "partyhelp.sync.anomaly"


@dataclass(frozen=True)
class TableMetrics:
    """One table's metrics on one published day: one row of ``ph_sync_metrics``."""

    sync_date: dt.date
    table_name: str
    rows: int
    rows_added: int | None = None  # new primary keys since the previous published day
    rows_removed: int | None = None  # primary keys gone since the previous published day
    previous_sync_date: dt.date | None = None  # None: the table's first published day
    money_totals: dict[str, str] = field(default_factory=dict)  # column -> "1234.50"
    null_counts: dict[str, int] = field(default_factory=dict)  # column -> NULL cells
    freshness_column: str | None = None
    newest_at: dt.datetime | None = None  # the freshness column's newest value (UTC)
    snapshot_at: dt.datetime | None = None  # the source's clock at the export's snapshot
    freshness_hours: float | None = None  # snapshot_at - newest_at
    freshness_status: str | None = None  # fresh, warn, stale, unknown or off
    anomalies: tuple[str, ...] = ()  # the metrics flagged on this day
    mode: str = "sync"  # sync or replay
    flow_run_id: str | None = None
    export_id: str | None = None

    def null_rate(self, column: str) -> float | None:
        """The share of the day's rows whose ``column`` is NULL; None without rows."""
        if not self.rows or column not in self.null_counts:
            return None
        return self.null_counts[column] / self.rows

    def to_row(self) -> dict[str, Any]:
        """The ``ph_sync_metrics`` row, JSON-ready (dates and times as ISO text)."""
        return {
            "sync_date": self.sync_date.isoformat(),
            "table_name": self.table_name,
            "mode": self.mode,
            "flow_run_id": self.flow_run_id,
            "export_id": self.export_id,
            "rows": self.rows,
            "rows_added": self.rows_added,
            "rows_removed": self.rows_removed,
            "previous_sync_date": _iso(self.previous_sync_date),
            "money_totals": json.dumps(self.money_totals, sort_keys=True),
            "null_counts": json.dumps(self.null_counts, sort_keys=True),
            "freshness_column": self.freshness_column,
            "newest_at": _iso(self.newest_at),
            "snapshot_at": _iso(self.snapshot_at),
            "freshness_hours": self.freshness_hours,
            "freshness_status": self.freshness_status,
            "anomalies": ",".join(self.anomalies),
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> TableMetrics:
        """Back from a ``ph_sync_metrics`` row, as BigQuery returns it or ``to_row`` wrote it."""
        return cls(
            sync_date=_day(row["sync_date"]),
            table_name=row["table_name"],
            rows=int(row["rows"]),
            rows_added=row.get("rows_added"),
            rows_removed=row.get("rows_removed"),
            previous_sync_date=_day(previous)
            if (previous := row.get("previous_sync_date"))
            else None,
            money_totals=json.loads(row.get("money_totals") or "{}"),
            null_counts=json.loads(row.get("null_counts") or "{}"),
            freshness_column=row.get("freshness_column"),
            newest_at=_moment(row.get("newest_at")),
            snapshot_at=_moment(row.get("snapshot_at")),
            freshness_hours=row.get("freshness_hours"),
            freshness_status=row.get("freshness_status"),
            anomalies=tuple(a for a in (row.get("anomalies") or "").split(",") if a),
            mode=row.get("mode") or "sync",
            flow_run_id=row.get("flow_run_id"),
            export_id=row.get("export_id"),
        )


def _iso(value: dt.date | dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _day(value: str | dt.date) -> dt.date:
    """A date from a row's DATE cell (a date, or ISO text)."""
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


def _moment(value: Any) -> dt.datetime | None:
    """An aware UTC datetime from a row's TIMESTAMP cell (a datetime, or ISO text)."""
    if value is None:
        return None
    moment: dt.datetime = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class MetricCheck:
    """One metric of one table on one day, judged against its usual range; an anomaly when
    ``flagged``."""

    table: str
    metric: str  # rows_added, rows_removed, freshness_hours or null_rate.<column>
    value: float
    median: float
    low: float  # the usual range: values inside it are not flagged
    high: float
    history_days: int  # the days it was judged against
    same_weekday: bool  # judged against the same weekday only
    flagged: bool = False  # far outside the usual range: an anomaly

    @property
    def message(self) -> str:
        """One line a person reads, naming the table, the metric and the usual range."""
        basis = "the same weekday" if self.same_weekday else "all days"
        return (
            f"{self.table}: {self.metric} is {_number(self.value)}, outside its usual range "
            f"{_number(self.low)}..{_number(self.high)} (median {_number(self.median)} of "
            f"{self.history_days} published days, {basis})"
        )


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.3g}"


@dataclass(frozen=True)
class TableHealth:
    """A table's metrics of the day and every check made on them."""

    metrics: TableMetrics
    checks: tuple[MetricCheck, ...] = ()

    @property
    def anomalies(self) -> tuple[MetricCheck, ...]:
        """The checks that flagged an anomaly."""
        return tuple(c for c in self.checks if c.flagged)


@dataclass(frozen=True)
class HealthPage:
    """The run's health page in GCS and its chart, for the summary artifact."""

    uri: str  # gs:// URI of the page
    chart_svg: str  # the chart alone, an SVG document
