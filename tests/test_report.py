"""What a run tells people: each failure named once with its table, the command's result."""

from __future__ import annotations

from partyhelp_pipeline.errors import SourceUnavailableError
from partyhelp_pipeline.report import RunReport, TableOutcome


def outcome(table: str) -> TableOutcome:
    return TableOutcome(table, "sync", "2026-11-25", "2026-11-25T03:00:00Z")


def test_a_failure_names_its_table_once() -> None:
    already_named, bare = outcome("ph_leads"), outcome("ph_venues")
    text = outcome("ph_lead_matches")
    already_named.fail(SourceUnavailableError("ph_leads: MySQL error 2013 while exporting: lost"))
    bare.fail(RuntimeError("Connection reset\nTraceback lines that stay out of the summary"))
    text.fail("load job failed")
    report = RunReport("2026-11-25", "sync", [already_named, bare, text],
                       view_error="ph_sales_billing_summary: BigQuery down")
    assert report.failures() == [
        "ph_leads: MySQL error 2013 while exporting: lost",
        "ph_venues: Connection reset",
        "ph_lead_matches: load job failed",
        "ph_sales_billing_summary: BigQuery down",
    ]
    assert all(o.status == "Failed" for o in report.outcomes)


def test_the_result_lists_every_table_with_its_rows() -> None:
    report = RunReport("2026-11-25", "replay", [outcome("ph_leads")])
    assert report.result() == {"sync_date": "2026-11-25", "mode": "replay",
                               "tables": {"ph_leads": {"rows": None, "manifest": None}},
                               "view": None}
    assert report.failures() == ["ph_leads: failed"]  # never loaded: not a success
    assert "| ph_leads | Failed |" in report.markdown()
