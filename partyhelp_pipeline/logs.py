"""One logger for plain functions: Prefect's run logger inside a run, else ``logging``."""

from __future__ import annotations

import logging
import sys
from typing import Any

Logger = logging.Logger | logging.LoggerAdapter[Any]


def prefect_loaded() -> bool:
    """Whether Prefect is imported: inside a flow or task run it always is. Code that only
    asks "am I in a run?" checks this first, so a process without Prefect (a benchmark, a
    script) never imports it to learn the answer: Prefect costs ~40 MB of memory."""
    return "prefect.context" in sys.modules


def get_logger() -> Logger:
    """Prefect's run logger when called inside a flow or task run, else a standard logger."""
    if not prefect_loaded():
        return logging.getLogger("partyhelp_sync")
    try:
        from prefect.exceptions import MissingContextError
        from prefect.logging import get_run_logger

        try:
            return get_run_logger()
        except MissingContextError:
            pass
    except ImportError:  # pragma: no cover - prefect is a dependency
        pass
    return logging.getLogger("partyhelp_sync")
