"""Source freshness: how old the newest row of a table was at the export's snapshot.

A read replica that stopped replicating, or an app that stopped writing, still answers
every query, and every count reconciles. Only the age of the newest row tells. Each spec
names its freshness column and two thresholds (``spec.Freshness``);
``PARTYHELP_WARN_SOURCE_AGE_HOURS`` and ``PARTYHELP_MAX_SOURCE_AGE_HOURS`` override them
for every table, and ``PARTYHELP_MAX_SOURCE_AGE_HOURS=0`` turns the check off.

The newest value and the clock are both the source server's, read in the export's snapshot
(``spec/sql.py totals_query``), so the client's clock and time zone play no part.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from partyhelp_pipeline.clock import iso
from partyhelp_pipeline.spec import TableSpec

Status = Literal["fresh", "warn", "stale", "unknown", "off"]
SETTING = "PARTYHELP_MAX_SOURCE_AGE_HOURS"


@dataclass(frozen=True)
class Limits:
    """The thresholds one table is judged by (None: the check is off)."""

    warn_after_hours: float | None
    error_after_hours: float | None
    error_after_set: bool = False  # PARTYHELP_MAX_SOURCE_AGE_HOURS chose error_after

    @classmethod
    def for_table(
        cls, spec: TableSpec, max_age_hours: float | None, warn_age_hours: float | None
    ) -> Limits:
        """The spec's thresholds, overridden by the two settings."""
        if spec.freshness is None or max_age_hours == 0:
            return NO_LIMITS
        error = spec.freshness.error_after_hours if max_age_hours is None else max_age_hours
        warn = spec.freshness.warn_after_hours if warn_age_hours is None else warn_age_hours
        return cls(min(warn, error), error, max_age_hours is not None)


NO_LIMITS = Limits(None, None)


@dataclass(frozen=True)
class SourceFreshness:
    """One table's freshness at its export's snapshot (the manifest's ``freshness``)."""

    column: str
    newest_at: str | None  # ISO 8601 UTC; None: no value (an empty table, all NULL)
    snapshot_at: str | None  # the source server's clock in the snapshot, ISO 8601 UTC
    age_hours: float | None
    warn_after_hours: float | None
    error_after_hours: float | None
    error_after_set: bool
    status: Status

    def to_dict(self) -> dict[str, Any]:
        """The manifest's JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SourceFreshness | None:
        """Back from the manifest; None for a manifest written before freshness existed."""
        return cls(**data) if data else None

    def describe(self) -> str:
        """``newest updated_at 2026-12-01 03:00:00 UTC, 50.2 h old`` (or why not known)."""
        if self.newest_at is None:
            return f"no {self.column} value to judge"
        newest = self.newest_at.replace("T", " ").replace("Z", " UTC")
        return f"newest {self.column} {newest}, {_hours(self.age_hours)} old"


def _hours(hours: float | None) -> str:
    """An age or a limit as people read it: ``3.2 days``, ``30.0 h``, ``45 min``, ``54 s``."""
    if hours is None:
        return "unknown"
    if hours >= 72:
        return f"{hours / 24:.1f} days"
    if abs(hours) >= 1:
        return f"{hours:.1f} h"
    return f"{hours * 60:.0f} min" if abs(hours) >= 1 / 6 else f"{hours * 3600:.0f} s"


def _epoch(value: Any) -> int | None:
    """Epoch seconds from the source; a zero date reads as 0 there: no value."""
    seconds = int(float(value)) if value is not None else 0
    return seconds if seconds > 0 else None


def status_of(age_hours: float | None, limits: Limits) -> Status:
    """Where an age falls against the limits."""
    if limits.error_after_hours is None:
        return "off"
    if age_hours is None:
        return "unknown"
    if age_hours > limits.error_after_hours:
        return "stale"
    if limits.warn_after_hours is not None and age_hours > limits.warn_after_hours:
        return "warn"
    return "fresh"


def measure(
    spec: TableSpec, readings: Iterable[tuple[Any, Any]], limits: Limits
) -> SourceFreshness | None:
    """The table's freshness from each chunk's ``(newest, snapshot)`` epoch readings: the
    newest value of all, against the earliest snapshot's clock."""
    if spec.freshness is None:
        return None
    pairs = [(_epoch(newest), _epoch(clock)) for newest, clock in readings]
    newest = max((n for n, _ in pairs if n is not None), default=None)
    clock = min((c for _, c in pairs if c is not None), default=None)
    age = None if newest is None or clock is None else round((clock - newest) / 3600, 3)
    return SourceFreshness(
        spec.freshness.column,
        _iso_epoch(newest),
        _iso_epoch(clock),
        age,
        limits.warn_after_hours,
        limits.error_after_hours,
        limits.error_after_set,
        status_of(age, limits),
    )


def _iso_epoch(seconds: int | None) -> str | None:
    return iso(dt.datetime.fromtimestamp(seconds, dt.UTC)) if seconds is not None else None


def limits_text(freshness: SourceFreshness) -> str:
    """``warn_after 24.0 h, error_after 3.0 days``, the limits it was judged by."""
    error = "PARTYHELP_MAX_SOURCE_AGE_HOURS" if freshness.error_after_set else "error_after"
    return (
        f"warn_after {_hours(freshness.warn_after_hours)}, "
        f"{error} {_hours(freshness.error_after_hours)}"
    )


def stale_message(table: str, freshness: SourceFreshness) -> str:
    """One line: the table, its newest row, its age and the limit it passed."""
    if freshness.status == "warn":
        return (
            f"{table}: the source is getting old: {freshness.describe()} at the export's "
            f"snapshot (warn_after {_hours(freshness.warn_after_hours)})"
        )
    which = SETTING if freshness.error_after_set else "error_after"
    return (
        f"{table}: the source is stale: {freshness.describe()} at the export's snapshot "
        f"({which} {_hours(freshness.error_after_hours)})"
    )
