"""Judge one table's metrics of the day against its trailing history (``ph_sync_metrics``).

Method: for each metric, the median of the history and its median absolute deviation (MAD,
scaled by 1.4826 to match a standard deviation), so a few odd days in the history move
neither the centre nor the width. A flat history has a MAD of 0, so the scale has a floor
that keeps ordinary noise unflagged: counts ``max(1.4826*MAD, 10% of |median|,
sqrt(|median|), 1)``, NULL shares ``max(1.4826*MAD, 0.02)``, freshness hours
``max(1.4826*MAD, 1)``. A metric is flagged when ``|value - median| > threshold * scale``;
the usual range is ``median -/+ threshold * scale``. Freshness is judged on its high side
only (a source fresher than usual is good news). A metric with fewer than ``min_days``
history days is not judged at all.

Weekdays: an events business is busier at weekends, so ``rows_added`` and
``rows_removed`` are judged against the same weekday's history once it holds at least four
such days (``same_weekday``). Before that they are judged against all days, and a value is
also usual within the same width of the median of the one to three same weekdays there are
(the usual range reported spans both): the weekend's volume is not an anomaly in a table's
first four weeks. NULL shares and freshness do not follow the week: judged against all days.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import statistics
from collections.abc import Callable, Sequence
from typing import Any

from partyhelp_pipeline.health import ANOMALY_EVENT, MetricCheck, TableMetrics

MAD_TO_SIGMA = 1.4826
SAME_WEEKDAY_MIN_DAYS = 4
COUNT_METRICS = ("rows_added", "rows_removed")
FRESHNESS_METRIC = "freshness_hours"
NULL_RATE_PREFIX = "null_rate."

Measure = Callable[[TableMetrics], float | None]


def check_metrics(
    today: TableMetrics,
    history: Sequence[TableMetrics],
    min_days: int = 7,
    threshold: float = 3.5,
) -> list[MetricCheck]:
    """Each metric of ``today`` judged against the table's earlier days in ``history``: counts,
    then freshness, then each column's NULL share (by column name); flagged or not."""
    earlier = [
        day
        for day in history
        if day.table_name == today.table_name and day.sync_date < today.sync_date
    ]
    judge = _Judge(today, earlier, min_days, threshold)
    checks = [judge.count(metric) for metric in COUNT_METRICS]
    checks.append(judge.freshness())
    checks += [judge.null_rate(column) for column in sorted(today.null_counts)]
    return [check for check in checks if check is not None]


def anomalies(checks: Sequence[MetricCheck]) -> list[MetricCheck]:
    """The flagged checks, in their order."""
    return [check for check in checks if check.flagged]


def event_payload(
    check: MetricCheck, sync_date: dt.date, flow_run_id: str | None
) -> dict[str, Any]:
    """The keyword arguments of ``prefect.events.emit_event`` announcing ``check``."""
    related = []
    if flow_run_id:  # the run that measured it: a person opens it from the notification
        related.append(
            {
                "prefect.resource.id": f"prefect.flow-run.{flow_run_id}",
                "prefect.resource.role": "flow-run",
            }
        )
    return {
        "event": ANOMALY_EVENT,
        "resource": {
            "prefect.resource.id": f"partyhelp.table.{check.table}",
            "prefect.resource.name": check.table,
            "partyhelp.metric": check.metric,
        },
        "related": related,
        "payload": {
            "value": check.value,
            "median": check.median,
            "low": check.low,
            "high": check.high,
            "history_days": check.history_days,
            "same_weekday": check.same_weekday,
            "sync_date": sync_date.isoformat(),
            "message": check.message,
        },
    }


class _Judge:
    """One table's day and its earlier days, with the method's two parameters."""

    def __init__(
        self,
        today: TableMetrics,
        earlier: Sequence[TableMetrics],
        min_days: int,
        threshold: float,
    ) -> None:
        self.today, self.earlier = today, earlier
        self.min_days, self.threshold = min_days, threshold

    def count(self, metric: str) -> MetricCheck | None:
        """``rows_added`` or ``rows_removed``, against the same weekday when it has enough."""

        def measure(day: TableMetrics) -> float | None:
            value = getattr(day, metric)
            return None if value is None else float(value)

        values = self._history(measure, self.earlier)
        if len(values) < self.min_days:  # too young a table: no judgement at all
            return None
        weekday = self.today.sync_date.weekday()
        same_days = [day for day in self.earlier if day.sync_date.weekday() == weekday]
        same_values = self._history(measure, same_days)
        same_weekday = len(same_values) >= SAME_WEEKDAY_MIN_DAYS
        basis = same_values if same_weekday else values
        median = statistics.median(basis)
        floor = max(0.1 * abs(median), math.sqrt(abs(median)), 1.0)
        check = self._judged(metric, measure, basis, floor, same_weekday)
        if check is None or same_weekday or not same_values:
            return check
        # Fewer than four such weekdays: the few there are still show the week's rhythm, so a
        # value is usual near the median of all days or near that of its weekday.
        width = check.high - check.median
        weekday_median = statistics.median(same_values)
        return dataclasses.replace(
            check,
            low=max(0.0, min(check.low, weekday_median - width)),
            high=max(check.high, weekday_median + width),
            flagged=check.flagged and abs(check.value - weekday_median) > width,
        )

    def freshness(self) -> MetricCheck | None:
        """Hours between the newest source row and the snapshot: only too old is flagged."""
        values = self._history(_freshness, self.earlier)
        if len(values) < self.min_days:
            return None
        return self._judged(FRESHNESS_METRIC, _freshness, values, 1.0, False, high_only=True)

    def null_rate(self, column: str) -> MetricCheck | None:
        """The share of the day's rows whose ``column`` is NULL."""

        def measure(day: TableMetrics) -> float | None:
            return day.null_rate(column)

        values = self._history(measure, self.earlier)
        if len(values) < self.min_days:
            return None
        return self._judged(NULL_RATE_PREFIX + column, measure, values, 0.02, False, upper=1.0)

    def _history(self, measure: Measure, days: Sequence[TableMetrics]) -> list[float]:
        return [value for day in days if (value := measure(day)) is not None]

    def _judged(
        self,
        metric: str,
        measure: Measure,
        basis: list[float],
        floor: float,
        same_weekday: bool,
        upper: float = math.inf,
        high_only: bool = False,
    ) -> MetricCheck | None:
        """The check of today's value against ``basis``: median and floored, scaled MAD."""
        value = measure(self.today)
        if value is None:
            return None
        median = statistics.median(basis)
        mad = statistics.median(abs(x - median) for x in basis)
        width = self.threshold * max(MAD_TO_SIGMA * mad, floor)
        distance = value - median if high_only else abs(value - median)
        return MetricCheck(
            table=self.today.table_name,
            metric=metric,
            value=value,
            median=median,
            low=max(0.0, median - width),
            high=min(upper, median + width),
            history_days=len(basis),
            same_weekday=same_weekday,
            flagged=distance > width,
        )


def _freshness(day: TableMetrics) -> float | None:
    return day.freshness_hours
