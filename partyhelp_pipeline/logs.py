"""One logger for plain functions: Prefect's run logger inside a run, else ``logging``."""

from __future__ import annotations

import logging
from typing import Any

Logger = logging.Logger | logging.LoggerAdapter[Any]


def get_logger() -> Logger:
    """Prefect's run logger when called inside a flow or task run, else a standard logger."""
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
