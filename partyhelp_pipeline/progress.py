"""Progress of a chunk's export: log lines with the rows so far, the source's count, the rate
and an ETA, and a Prefect progress artifact when it runs inside a task run.

Progress is a view: it never fails the export. Outside Prefect (a plain call, the
benchmark) nothing of Prefect is imported.
"""

from __future__ import annotations

import time
from typing import Any

from partyhelp_pipeline.logs import Logger, prefect_loaded


class ChunkProgress:
    """Follows a chunk's stream: every ``every`` seconds (``PARTYHELP_PROGRESS_SECONDS``) it
    logs the rows so far, of the source's count (known before streaming), the rate and an
    ETA; inside a Prefect task run a progress artifact follows the export too."""

    def __init__(self, log: Logger, table: str, index: int, every: float) -> None:
        self._log, self._table, self._index, self._every = log, table, index, every
        self._started = time.monotonic()
        self._last = self._started
        self._total = 0
        self._artifact: Any = None

    def start(self, total: int) -> None:
        """The source's row count of the chunk; opens the progress artifact."""
        self._total, self._started = total, time.monotonic()
        self._last = self._started
        self._artifact = create_progress_artifact(
            self._log,
            f"export-{self._table}-chunk-{self._index}".replace("_", "-"),
            f"export of {self._table}, chunk {self._index}: {total:,} rows in the source",
        )

    def update(self, rows: int) -> None:
        """Log (and move the artifact) if the interval has passed."""
        now = time.monotonic()
        if now - self._last < self._every:
            return
        self._last = now
        rate = rows / max(now - self._started, 1e-9)
        left = max(self._total - rows, 0)
        eta = f"ETA {left / rate:.0f} s" if rate > 0 else "ETA unknown"
        self._log.info(
            "export-%s chunk %d: %d of %d rows (%.1f %%), %.0f rows/s, %s",
            self._table,
            self._index,
            rows,
            self._total,
            self._percent(rows),
            rate,
            eta,
        )
        self._move_artifact(self._percent(rows))

    def finish(self) -> None:
        """The stream ended: the artifact shows 100 %."""
        self._move_artifact(100.0)

    def _percent(self, rows: int) -> float:
        return min(100.0, 100.0 * rows / self._total) if self._total else 100.0

    def _move_artifact(self, percent: float) -> None:
        if self._artifact is None:
            return
        try:
            from prefect.artifacts import update_progress_artifact

            update_progress_artifact(self._artifact, percent)
        except Exception as exc:  # progress is a view: it never fails the export
            self._log.warning(
                "export-%s chunk %d: progress artifact not updated: %s",
                self._table,
                self._index,
                exc,
            )
            self._artifact = None


def create_progress_artifact(log: Logger, key: str, description: str) -> Any:
    """A Prefect progress artifact at 0 %, when running inside a Prefect task run; else
    (or when the API refuses it) None."""
    if not prefect_loaded():  # surely not in a task run
        return None
    from prefect.context import TaskRunContext

    if TaskRunContext.get() is None:
        return None
    try:
        from prefect.artifacts import create_progress_artifact as create

        return create(0.0, key=key, description=description)
    except Exception as exc:  # progress is a view: it never fails the export
        log.warning("%s: progress artifact not created: %s", key, exc)
        return None
