"""The one clock of the sync: aware UTC times and their ISO 8601 text."""

from __future__ import annotations

import datetime as dt


def utc_now() -> dt.datetime:
    """The current time, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


def iso(moment: dt.datetime) -> str:
    """ISO 8601 in UTC with a ``Z``."""
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def parse_iso(text: str) -> dt.datetime:
    """The aware datetime of an ``iso`` text."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
