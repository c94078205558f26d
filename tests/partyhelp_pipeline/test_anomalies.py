"""Volume anomalies judged against a synthetic history (issue 21, part 2): thirty days of a
growing table with a weekly rhythm raise nothing; each kind of bad day raises exactly its
flag, with the usual range it fell out of."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections.abc import Sequence
from typing import Any

import pytest

from partyhelp_pipeline.anomalies import anomalies, check_metrics, event_payload
from partyhelp_pipeline.health import ANOMALY_EVENT, MetricCheck, TableMetrics

TABLE = "ph_purchases"
FIRST_DAY = dt.date(2026, 11, 2)  # a Monday
WEEKEND_BOOST = 1.5  # Saturdays and Sundays sell half as much again
METRICS = ("rows_added", "rows_removed", "freshness_hours")
COLUMNS = ("cancelled_at", "email", "venue_id")


def normal_days(count: int, seed: int = 21) -> list[TableMetrics]:
    """``count`` published days of a table that grows by about 100 purchases a weekday (one more
    each day) and half as much again at weekends, with a few cancellations, a column NULL in
    about 1% of rows, one mostly NULL, one never NULL, and a source a few hours fresh."""
    rng = random.Random(seed)
    days, rows = [], 5000
    for index in range(count):
        day = FIRST_DAY + dt.timedelta(days=index)
        usual = (100 + index) * (WEEKEND_BOOST if day.weekday() >= 5 else 1.0)
        added, removed = round(usual) + rng.randint(-4, 4), rng.randint(0, 3)
        rows += added - removed
        days.append(
            TableMetrics(
                sync_date=day,
                table_name=TABLE,
                rows=rows,
                rows_added=added,
                rows_removed=removed,
                null_counts={
                    "cancelled_at": round(rows * 0.9) + rng.randint(-10, 10),
                    "email": round(rows * 0.01) + rng.randint(0, 3),
                    "venue_id": 0,
                },
                freshness_hours=round(rng.uniform(0.2, 2.5), 2),
            )
        )
    return days


DAYS = normal_days(35)
HISTORY, NEXT_DAY = DAYS[6:34], DAYS[34]  # a Sunday, after 28 days with four Sundays in them
SUNDAY_ADDED = (173.0, 112.45, 233.55)  # median, low, high of the four earlier Sundays


def flagged(day: TableMetrics, history: Sequence[TableMetrics] = HISTORY) -> list[str]:
    return [check.metric for check in anomalies(check_metrics(day, history))]


def check_of(
    day: TableMetrics, metric: str, history: Sequence[TableMetrics] = HISTORY
) -> MetricCheck:
    [check] = [c for c in check_metrics(day, history) if c.metric == metric]
    return check


def usual(check: MetricCheck) -> tuple[float, float, float]:
    return (round(check.median, 4), round(check.low, 4), round(check.high, 4))


def test_thirty_normal_days_raise_no_flag() -> None:
    """Each of thirty days judged against its own trailing history (at most 28 days), from the
    first day with seven days behind it: every metric judged, none flagged, weekends included
    (before four same weekdays exist, judged against all days and the weekdays seen)."""
    days = normal_days(30)
    for index, day in enumerate(days):
        checks = check_metrics(day, days[max(0, index - 28) : index])
        if index < 7:
            assert checks == [], day.sync_date  # too little history: no judgement at all
            continue
        assert [c.metric for c in checks] == [
            *METRICS,
            *(f"null_rate.{column}" for column in COLUMNS),
        ]
        assert anomalies(checks) == [], [c.message for c in anomalies(checks)]
        # Same weekday once four such days are behind it: from the 29th day, a Monday.
        assert [c.same_weekday for c in checks[:2]] == [index >= 28] * 2, day.sync_date
        assert {c.history_days for c in checks[2:]} == {min(index, 28)}


@pytest.mark.parametrize(
    ("change", "expected", "usual_range"),
    [
        ({"rows_added": 0}, "rows_added", SUNDAY_ADDED),  # no purchases: a checkout bug
        ({"rows_added": 1990}, "rows_added", SUNDAY_ADDED),  # ten times: a bulk import
        (
            {"null_counts": {"cancelled_at": 8663, "email": 99, "venue_id": 9631}},
            "null_rate.venue_id",
            (0.0, 0.0, 0.07),
        ),  # every venue_id NULL: a broken join in the app
        ({"freshness_hours": 50.0}, "freshness_hours", (1.32, 0.0, 4.9005)),  # a stale replica
    ],
    ids=["no-new-purchases", "ten-times-usual", "column-turns-null", "stale-source"],
)
def test_each_bad_day_raises_exactly_its_flag(
    change: dict[str, Any], expected: str, usual_range: tuple[float, float, float]
) -> None:
    assert flagged(NEXT_DAY) == []
    bad_day = dataclasses.replace(NEXT_DAY, **change)
    assert flagged(bad_day) == [expected]
    check = check_of(bad_day, expected)
    assert usual(check) == usual_range
    assert (check.history_days, check.same_weekday) == (
        (4, True) if expected == "rows_added" else (28, False)
    )


def test_a_weekend_is_usual_on_a_weekend_only() -> None:
    """The Sunday's usual range is the earlier Sundays': the same volume on the Monday after
    it is flagged against the earlier Mondays."""
    assert NEXT_DAY.sync_date.weekday() == 6 and NEXT_DAY.rows_added == 199
    assert usual(check_of(NEXT_DAY, "rows_added")) == SUNDAY_ADDED
    monday = dataclasses.replace(NEXT_DAY, sync_date=NEXT_DAY.sync_date + dt.timedelta(days=1))
    check = check_of(monday, "rows_added", DAYS[7:35])
    assert (check.same_weekday, check.history_days, check.flagged) == (True, 4, True)
    assert usual(check) == (120.5, 78.325, 162.675)  # the four earlier Mondays'


def test_fewer_than_min_days_of_a_metric_judge_nothing_of_it() -> None:
    """Per metric: six days with rows_added (the first published day has none) and seven
    with everything else judge everything else only; a column new today is not judged."""
    first_week = [dataclasses.replace(DAYS[0], rows_added=None), *DAYS[1:7]]
    today = dataclasses.replace(DAYS[7], null_counts={**DAYS[7].null_counts, "refund_id": 7})
    assert [c.metric for c in check_metrics(today, first_week)] == [
        "rows_removed",
        "freshness_hours",
        *(f"null_rate.{column}" for column in COLUMNS),
    ]
    assert check_metrics(DAYS[6], DAYS[:6]) == []
    assert [c.metric for c in check_metrics(DAYS[6], DAYS[:6], min_days=6)][:1] == ["rows_added"]


def test_a_few_outliers_in_the_history_do_not_mask_a_flag() -> None:
    """Three odd days among the 28: a bulk import on a Saturday, a Sunday without sales that
    also began stale, a stale Wednesday. The Sunday is one of the four the next Sunday is judged
    against: its range widens (161.5 +- 96 instead of 173 +- 61) and still flags either extreme;
    the freshness range barely moves."""
    odd: dict[int, dict[str, Any]] = {
        12: {"rows_added": 1600},  # Saturday
        20: {"rows_added": 0, "freshness_hours": 40.0},  # Sunday
        30: {"freshness_hours": 30.0},
    }
    history = [
        dataclasses.replace(d, **odd.get(i, {})) for i, d in enumerate(DAYS) if i in range(6, 34)
    ]
    assert usual(check_of(NEXT_DAY, "rows_added", history)) == (161.5, 65.5017, 257.4983)
    # Without the odd days: (1.32, 0.0, 4.9005).
    assert usual(check_of(NEXT_DAY, "freshness_hours", history)) == (1.415, 0.0, 5.2809)
    for change, expected in (
        ({"rows_added": 1990}, ["rows_added"]),
        ({"rows_added": 0}, ["rows_added"]),
        ({"freshness_hours": 30.0}, ["freshness_hours"]),
    ):
        assert flagged(dataclasses.replace(NEXT_DAY, **change), history) == expected


def test_the_event_names_the_table_the_metric_and_the_run() -> None:
    [check] = anomalies(check_metrics(dataclasses.replace(NEXT_DAY, rows_added=0), HISTORY))
    event = event_payload(check, NEXT_DAY.sync_date, "0f6f2c1e-run")
    assert event == {
        "event": ANOMALY_EVENT,
        "resource": {
            "prefect.resource.id": f"partyhelp.table.{TABLE}",
            "prefect.resource.name": TABLE,
            "partyhelp.metric": "rows_added",
        },
        "related": [
            {
                "prefect.resource.id": "prefect.flow-run.0f6f2c1e-run",
                "prefect.resource.role": "flow-run",
            }
        ],
        "payload": {
            "value": 0.0,
            "median": 173.0,
            "low": check.low,
            "high": check.high,
            "history_days": 4,
            "same_weekday": True,
            "sync_date": "2026-12-06",
            "message": f"{TABLE}: rows_added is 0, outside its usual range 112..234 (median 173 "
            "of 4 published days, the same weekday)",
        },
    }
    assert event_payload(check, NEXT_DAY.sync_date, None)["related"] == []
