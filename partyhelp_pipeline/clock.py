"""The one clock of the sync: aware UTC times and their ISO 8601 text, and the reporting
day a run is for."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from partyhelp_pipeline.errors import SyncError


def utc_now() -> dt.datetime:
    """The current time, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


def iso(moment: dt.datetime) -> str:
    """ISO 8601 in UTC with a ``Z``."""
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def parse_iso(text: str) -> dt.datetime:
    """The aware datetime of an ``iso`` text."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


class SyncDateError(SyncError):
    """A sync from MySQL was asked for a day other than today: MySQL only holds now."""


def reporting_today(timezone: str, clock_date: dt.date | None = None) -> dt.date:
    """Today in the reporting time zone; ``clock_date`` when a test clock sets it."""
    return clock_date or dt.datetime.now(ZoneInfo(timezone)).date()


def sync_date_for(requested: dt.date | None, replay: bool, today: dt.date) -> dt.date:
    """The run's ``sync_date``: a sync from MySQL is a snapshot of now, so its day is
    ``today`` and another day is refused; a replay's day is the kept day it names."""
    if replay:
        if requested is None:
            raise SyncDateError(
                "a replay needs the day of its kept exports (--from-exports YYYY-MM-DD)"
            )
        return requested
    if requested is not None and requested != today:
        raise SyncDateError(
            f"a sync from MySQL is a snapshot of now, so its sync_date is today "
            f"({today.isoformat()} in the reporting time zone), not {requested.isoformat()}; "
            f"to reload a kept day use --from-exports {requested.isoformat()}, for a range "
            "of days use backfill"
        )
    return today
