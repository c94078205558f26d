"""What a run tells people: each failure named once with its table, the command's result,
the data-quality log levels and the markdown summary read in the Prefect UI."""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any

from flows.cli import result_lines
from partyhelp_pipeline.errors import SourceUnavailableError
from partyhelp_pipeline.manifest import Manifest, PartInfo
from partyhelp_pipeline.report import (
    RunReport,
    TableOutcome,
    Target,
    is_derivation,
    readable_bytes,
    readable_seconds,
)
from partyhelp_pipeline.warehouse.replace import LoadResult


def outcome(table: str) -> TableOutcome:
    return TableOutcome(table, "sync", dt.date(2026, 11, 25), "2026-11-25T03:00:00Z")


def test_a_failure_names_its_table_once() -> None:
    already_named, bare = outcome("ph_leads"), outcome("ph_venues")
    text = outcome("ph_lead_matches")
    already_named.fail(SourceUnavailableError("ph_leads: MySQL error 2013 while exporting: lost"))
    bare.fail(RuntimeError("Connection reset\nTraceback lines that stay out of the summary"))
    text.fail("load job failed")
    report = RunReport(
        dt.date(2026, 11, 25),
        "sync",
        [already_named, bare, text],
        view_errors=["ph_sales_billing_summary: BigQuery down"],
    )
    assert report.failures() == [
        "ph_leads: MySQL error 2013 while exporting: lost",
        "ph_venues: Connection reset",
        "ph_lead_matches: load job failed",
        "ph_sales_billing_summary: BigQuery down",
    ]
    assert all(o.status == "Failed" for o in report.outcomes)
    summary = report.markdown().splitlines()
    assert summary[summary.index("## Failures") + 2 :][:3] == [
        "- **ph_leads**: MySQL error 2013 while exporting: lost",
        "- **ph_venues**: Connection reset",
        "- **ph_lead_matches**: load job failed",
    ]
    assert "- **ph_sales_billing_summary**: not refreshed: BigQuery down" in summary


def test_the_result_lists_every_table_with_its_rows() -> None:
    report = RunReport(dt.date(2026, 11, 25), "replay", [outcome("ph_leads")])
    assert report.result() == {
        "sync_date": "2026-11-25",
        "mode": "replay",
        "tables": {
            "ph_leads": {
                "rows": None,
                "manifest": None,
                "current_replaced": None,
                "state": "Failed",
                "seconds": None,
                "freshness": None,
                "anomalies": [],
            }
        },
        "views": [],
    }
    assert report.failures() == ["ph_leads: failed"]  # never loaded: not a success
    assert "| ph_leads | Failed |" in report.markdown()


# ------------------------------------------------------------------ the summary people read

SYNC_DAY = dt.date(2026, 11, 25)
TABLE_SIZES = {  # a larger day than today's: long numbers are the widest a row gets
    "ph_leads": (1_000_000, 7, 912_345_678),
    "ph_venues": (600, 1, 48_123),
    "ph_lead_purchases": (3_000_000, 12, 2_345_678_901),
    "ph_credit_transactions": (21_000_000, 80, 14_123_456_789),
    "ph_lead_matches": (56_000_000, 200, 41_987_654_321),
}


def at(clock: str) -> str:
    return f"{SYNC_DAY}T{clock}Z"


def manifest(
    table: str, chunks: list[tuple[str, str]], completed: str, quality: dict[str, Any] | None = None
) -> Manifest:
    rows, files, size = TABLE_SIZES[table]
    export_id = "20261125T030000Z-c58e292c-9b53"
    folder = f"gs://ph-exports/partyhelp/sync_date={SYNC_DAY}/{table}/{export_id}"
    parts = [
        PartInfo(f"{folder}/part-{i:05d}.avro", rows // files, size // files, "AAAAAA==")
        for i in range(files)
    ]
    return Manifest(
        table,
        SYNC_DAY,
        export_id,
        "c58e292c",
        at(chunks[0][0]),
        at(completed),
        parts,
        rows,
        size,
        {"row_count": rows},
        {},
        quality or {},
        [
            {"index": i, "started_at": at(start), "finished_at": at(end)}
            for i, (start, end) in enumerate(chunks)
        ],
        {},
        [],
        uri=f"{folder}/manifest.json",
    )


def loaded(m: Manifest, start: str, end: str, current_replaced: bool = True) -> LoadResult:
    return LoadResult(
        m.table,
        m.uri,
        m.export_id,
        m.rows,
        f"partyhelp_{m.table}_20261125_7d1c6f0e-2b7a-4d55-9b1e-0c4c1f5e6a11",
        "partyhelp_copy",
        f"{SYNC_DAY}T{start}+00:00",
        f"{SYNC_DAY}T{end}+00:00",
        {},
        current_replaced=current_replaced,
        current_day=None if current_replaced else "2026-11-26",
    )


LEADS_QUALITY = {
    "counts": {
        "zero_date_nulled:event_date": 3,
        "orphan_area": 2,
        "json_unreadable": 1,
        "occasion_label_derived": 40,
    },
    "examples": {
        "zero_date_nulled:event_date": [11, 12, 13],
        "orphan_area": [21, 22],
        "json_unreadable": [31],
        "occasion_label_derived": [41, 42, 43, 44, 45],
    },
}


def completed_run(target: Target | None = None, attempt: int = 1) -> RunReport:
    """Every table done: ph_leads in two overlapping chunks, each after a wait for a slot."""
    outcomes = []
    for table in TABLE_SIZES:
        o = TableOutcome(table, "sync", SYNC_DAY, at("03:00:00"))
        quality = LEADS_QUALITY if table == "ph_leads" else None
        chunks = (
            [("03:01:00", "03:01:05"), ("03:01:03", "03:01:08")]
            if table == "ph_leads"
            else [("03:02:00", "03:02:04")]
        )
        o.manifest = manifest(
            table, chunks, "03:02:10" if table == "ph_leads" else "03:02:05", quality
        )
        o.load = loaded(o.manifest, "03:05:00", "03:05:20", current_replaced=table != "ph_venues")
        o.ended_at = at("03:06:00")
        outcomes.append(o)
    return RunReport(
        SYNC_DAY,
        "sync",
        outcomes,
        views=["ph_sales_billing_summary"],
        view_errors=["ph_sales_by_financial_period: BigQuery down"],
        target=target,
        attempt=attempt,
    )


def visible(markdown_line: str) -> str:
    """A line as the page shows it: a link's text, not its URL."""
    return re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown_line)


def test_each_table_shows_its_own_work_not_the_time_since_the_run_started() -> None:
    leads, venues = completed_run().outcomes[:2]
    # ph_leads: chunks 03:01:00-03:01:08 (overlap once), manifest to 03:02:10, load 20 s
    assert leads.work_seconds == 8 + 62 + 20
    assert venues.work_seconds == 4 + 1 + 20
    assert leads.duration_seconds == 360  # started with the run, waited for slots
    # A replay's kept export (or a retried run's reused one) ran before this attempt.
    replay = TableOutcome(
        "ph_venues", "replay", SYNC_DAY, at("03:04:00"), manifest=venues.manifest, load=venues.load
    )
    assert replay.work_seconds == 20
    assert TableOutcome("ph_venues", "sync", SYNC_DAY, at("03:00:00")).work_seconds is None


def test_bytes_and_seconds_read_as_people_read_them() -> None:
    assert [
        readable_bytes(n)
        for n in (0, 1023, 1024, 48_123, 3 * 1024**2 + 1, 41 * 1024**3, 5 * 1024**4)
    ] == ["0 B", "1023 B", "1.0 KiB", "47.0 KiB", "3.0 MiB", "41.0 GiB", "5.0 TiB"]
    assert [readable_seconds(s) for s in (0.04, 59.94, 125, 3725)] == [
        "0.0 s",
        "59.9 s",
        "2 min 05 s",
        "1 h 02 min",
    ]


def test_the_main_table_is_narrow_and_quality_has_its_own_section() -> None:
    text = completed_run(Target("partyhelp-prod", "partyhelp", console=True)).markdown()
    lines = text.splitlines()
    header = lines.index("| table | state | rows | files | size | work time | data quality |")
    rows = [line for line in lines[header + 2 :] if line.startswith("| ph_")][:5]
    # 95 characters of text at most: a 1400-pixel screen shows the table whole in the UI
    assert max(len(visible(line)) for line in lines[header : header + 7]) <= 95
    assert (
        rows[0] == "| ph_leads | Completed | 1,000,000 | 7 | 870.1 MiB | 1 min 30 s | "
        "6 anomalies, 40 derived |"
    )
    assert "| ph_venues | Completed | 600 | 1 | 47.0 KiB | 25.0 s | none |" in rows
    assert "| ph_lead_matches | Completed | 56,000,000 | 200 | 39.1 GiB |" in rows[4]
    quality = lines[lines.index("## Data quality") :]
    assert "| ph_leads | zero_date_nulled:event_date | anomaly | 3 | 11, 12, 13 |" in quality
    assert "| ph_leads | json_unreadable | anomaly | 1 | 31 |" in quality
    assert "| ph_leads | occasion_label_derived | derived | 40 | 41, 42, 43, 44, 45 |" in quality
    assert "- **ph_sales_by_financial_period**: not refreshed: BigQuery down" in lines
    assert "- `ph_sales_billing_summary`: refreshed" in lines
    assert (
        "- ph_venues: 2026-11-25 filled its history partition; the current table keeps "
        "its newer day 2026-11-26" in lines
    )


def test_links_are_console_links_on_gcp_and_plain_gs_text_on_the_emulators() -> None:
    gcp = completed_run(Target("partyhelp-prod", "partyhelp", console=True)).markdown()
    leads = next(
        line
        for line in gcp.splitlines()
        if line.startswith("- ph_leads:") and "manifest.json" in line
    )
    folder = "partyhelp/sync_date=2026-11-25/ph_leads/20261125T030000Z-c58e292c-9b53"
    assert leads == (
        f"- ph_leads: manifest [gs://ph-exports/{folder}/manifest.json]"
        f"(https://console.cloud.google.com/storage/browser/_details/ph-exports/{folder}"
        "/manifest.json?project=partyhelp-prod); table [partyhelp-prod.partyhelp.ph_leads]"
        "(https://console.cloud.google.com/bigquery?project=partyhelp-prod"
        "&ws=!1m5!1m4!4m3!1spartyhelp-prod!2spartyhelp!3sph_leads); load job "
        "`partyhelp_ph_leads_20261125_7d1c6f0e-2b7a-4d55-9b1e-0c4c1f5e6a11`"
    )
    # Every URL is a [text](url) link's: the UI shows a bare URL's & as &amp;
    assert "&amp;" not in gcp
    assert gcp.count("https://") == gcp.count("](https://") == 2 * len(TABLE_SIZES)

    local = completed_run(Target("partyhelp-local", "partyhelp", console=False)).markdown()
    assert "https://" not in local and "](" not in local
    assert (
        f"- ph_leads: manifest `gs://ph-exports/{folder}/manifest.json`; table "
        "`partyhelp-local.partyhelp.ph_leads`; load job" in local
    )
    assert "https://" not in completed_run(target=None).markdown()


def test_a_retried_run_says_which_attempt_it_is() -> None:
    first, retry = completed_run().markdown(), completed_run(attempt=3).markdown()
    assert first.startswith("# Partyhelp -> BigQuery sync, 2026-11-25 (sync)\n")
    assert "attempt" not in first.splitlines()[0]
    assert retry.startswith("# Partyhelp -> BigQuery sync, 2026-11-25 (sync), attempt 3\n")
    assert "Attempt 3 of this flow run: work finished by an earlier attempt was reused" in retry


def test_derived_values_log_as_information_and_anomalies_as_warnings() -> None:
    report = completed_run()
    assert report.quality_log_lines() == [
        (
            logging.WARNING,
            "ph_leads data quality: json_unreadable=1 (e.g. ids 31), "
            "orphan_area=2 (e.g. ids 21, 22), zero_date_nulled:event_date=3 "
            "(e.g. ids 11, 12, 13)",
        ),
        (
            logging.INFO,
            "ph_leads derived values: occasion_label_derived=40 (e.g. ids 41, 42, 43, 44, 45)",
        ),
    ]
    assert [is_derivation(c) for c in LEADS_QUALITY["counts"]] == [False, False, False, True]


def test_the_command_prints_a_small_table_not_a_dict() -> None:
    report = completed_run()
    report.views = ["partyhelp-prod.partyhelp.ph_sales_billing_summary"]
    lines = result_lines(report.result())
    assert lines == [
        "  table                          rows   seconds  state",
        "  ph_leads                  1,000,000      90.0  Completed",
        "  ph_venues                       600      25.0  Completed (history only: the "
        "current table keeps a newer day)",
        "  ph_lead_purchases         3,000,000      25.0  Completed",
        "  ph_credit_transactions   21,000,000      25.0  Completed",
        "  ph_lead_matches          56,000,000      25.0  Completed",
        "  views refreshed: ph_sales_billing_summary",
    ]
