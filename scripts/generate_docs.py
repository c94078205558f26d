"""Write what is generated from the specs (never by hand): docs/tables.md, the table
reference, and the SQL under sql/source/ and sql/bigquery/, for people to read.

    python -m scripts.generate_docs          # rewrite every generated file
    python -m scripts.generate_docs --check  # exit 1 if one is out of date (a test runs this)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from partyhelp_pipeline.settings import Settings, settings_table
from partyhelp_pipeline.spec import (
    AUDIT_TABLE,
    HEALTH_VIEW,
    METRICS_TABLE,
    SALES_BILLING_SUMMARY,
    SALES_BY_FINANCIAL_PERIOD,
    TABLES,
    TYPES,
    Column,
    TableSpec,
)
from partyhelp_pipeline.spec.sql import (
    flattening_query,
    freshness_query,
    health_view_query,
    lookup_query,
    period_view_query,
    totals_query,
    view_query,
)
from partyhelp_pipeline.spec.tables import FRESHNESS_VIEW, AuditTableSpec, AuditViewSpec

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "tables.md"
README = ROOT / "README.md"
SETTINGS_BEGIN, SETTINGS_END = "<!-- settings:begin -->", "<!-- settings:end -->"
DEFAULT_TIMEZONE = str(Settings.model_fields["timezone"].default)  # the SQL shows the default
SQL_HEADER = (
    "-- Generated from partyhelp_pipeline/spec by `python -m scripts.generate_docs`; do not edit.\n"
)


def _lookups_sentence(spec: TableSpec) -> str:
    if not spec.lookups:
        return ""
    each = ", ".join(
        f"`{lookup.join.table}` on `{lookup.join.parent}` "
        f"(`sql/source/lookups/{spec.name}.{lookup.join.table}.sql`)"
        for lookup in spec.lookups
    )
    return f" Joined in Arrow, read once per chunk in its snapshot: {each}."


def render_sql_files() -> dict[Path, str]:
    """Every generated SQL file and its text: what the sync runs, verbatim."""
    files = {}
    for spec in TABLES.values():
        files[ROOT / "sql" / "source" / f"{spec.name}.sql"] = SQL_HEADER + flattening_query(spec)
        for lookup in spec.lookups:
            name = f"{spec.name}.{lookup.join.table}.sql"
            files[ROOT / "sql" / "source" / "lookups" / name] = SQL_HEADER + lookup_query(
                spec, lookup
            )
        files[ROOT / "sql" / "source" / "totals" / f"{spec.name}.sql"] = SQL_HEADER + totals_query(
            spec
        )
    view = SALES_BILLING_SUMMARY
    base = f"`PROJECT.DATASET.{view.base.name}`"  # the configured project and dataset
    files[ROOT / "sql" / "bigquery" / f"{view.name}.sql"] = SQL_HEADER + view_query(view, base)
    period = SALES_BY_FINANCIAL_PERIOD
    files[ROOT / "sql" / "bigquery" / f"{period.name}.sql"] = SQL_HEADER + period_view_query(
        period, f"`PROJECT.DATASET.{period.base.name}`", DEFAULT_TIMEZONE
    )
    audit = f"`PROJECT.DATASET.{FRESHNESS_VIEW.base.name}`"
    files[ROOT / "sql" / "bigquery" / f"{FRESHNESS_VIEW.name}.sql"] = SQL_HEADER + freshness_query(
        FRESHNESS_VIEW, audit
    )
    metrics = f"`PROJECT.DATASET.{HEALTH_VIEW.base.name}`"
    files[ROOT / "sql" / "bigquery" / f"{HEALTH_VIEW.name}.sql"] = SQL_HEADER + health_view_query(
        HEALTH_VIEW, metrics
    )
    return files


def _type_rows() -> list[str]:
    rows = [
        "| BigQuery type | wire SQL | wire value | Arrow | Avro | MySQL types carried exactly |",
        "|---|---|---|---|---|---|",
    ]
    for name, rule in TYPES.items():
        avro = rule.avro_kind + (f" ({rule.avro_logical_type})" if rule.avro_logical_type else "")
        mysql = ", ".join(sorted(t.upper() for t in rule.mysql_types))
        rows.append(
            f"| {name} | `{rule.wire_sql('col')}` | {rule.wire_meaning} | "
            f"{rule.arrow} | {avro} | {mysql} |"
        )
    return rows


def _column_rows(columns: tuple[Column, ...]) -> list[str]:
    rows = ["| column | type | mode | source | description |", "|---|---|---|---|---|"]
    rows += [
        f"| `{c.name}` | {c.type} | {c.mode} | {_source(c)} | {c.description} |" for c in columns
    ]
    return rows


def _source(column: Column) -> str:
    if column.derive:
        return f"derived ({column.derive})" + (f" from `{column.source}`" if column.source else "")
    return f"`{column.source}`" if column.source else ""


def _clustering(spec: TableSpec) -> str:
    return ", ".join(f"`{name}`" for name in spec.cluster_by) or "none"


def _layout(spec: TableSpec) -> list[str]:
    return [
        f"Clustered by {_clustering(spec)}; not partitioned (it holds one day). History: "
        f"`{spec.history_name}`."
    ]


def _history_section() -> list[str]:
    lines = [
        "## History tables (`ph_<table>_history`)",
        "",
        "Each reporting table has a history beside it, with the same columns, "
        "`sync_date` included: one partition per `sync_date` (DAY), each day's snapshot "
        "as that day's run saw the source. A run replaces exactly its day's partition, "
        "in one transaction, after the same reconciliation as the current table. "
        "Partitions expire after `PARTYHELP_HISTORY_DAYS` days (default 400; 0 keeps "
        "them). Columns a table gains later are NULL in earlier days.",
        "",
        "| history table | of | partitioned by | clustered by |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| `{spec.history_name}` | `{spec.name}` | `sync_date` (DAY) | {_clustering(spec)} |"
        for spec in TABLES.values()
    ]
    return [*lines, ""]


def render() -> str:
    """The whole reference as markdown."""
    lines = [
        "# Reporting tables",
        "",
        "Generated from `partyhelp_pipeline/spec/` by `python -m scripts.generate_docs`; do not "
        "edit.",
        "The same specs produce the source queries, the Avro schemas of the exports and the",
        "BigQuery schemas (with these descriptions, visible in the BigQuery console).",
        "",
        "## Types",
        "",
        "Each column's BigQuery type decides how it leaves MySQL (a wire form converted in",
        "SQL, so whole batches convert at once), how it is held in Arrow and written in Avro,",
        "and which source types the schema-drift check accepts for it:",
        "",
        *_type_rows(),
        "",
    ]
    for spec in TABLES.values():
        lines += [
            f"## `{spec.name}`",
            "",
            spec.description,
            "",
            f"Source: `{spec.source_table}` (query `sql/source/{spec.name}.sql`), "
            f"primary key `{spec.primary_key}`.{_lookups_sentence(spec)}",
            "",
        ]
        lines += _column_rows(spec.columns)
        if spec.orphan_checks:
            checks = ", ".join(
                f"`{c.key_column}` set but `{c.context_column}` NULL (`orphan_{c.parent}`)"
                for c in spec.orphan_checks
            )
            lines += ["", f"Orphans counted: {checks}."]
        lines += ["", *_layout(spec), ""]
    lines += _history_section()
    return "\n".join(lines + _views_section()) + "\n"


def _views_section() -> list[str]:
    """The views and the audit table, after the reporting tables."""
    view = SALES_BILLING_SUMMARY
    lines = [
        f"## `{view.name}` (view)",
        "",
        view.description,
        "",
        f"`CREATE OR REPLACE VIEW` over `{view.base.name}` "
        f"(`sql/bigquery/{view.name}.sql`), refreshed after that table loads.",
        "",
    ]
    lines += _column_rows(view.columns)
    period = SALES_BY_FINANCIAL_PERIOD
    lines += [
        "",
        f"## `{period.name}` (view)",
        "",
        period.description,
        "",
        f"`CREATE OR REPLACE VIEW` over `{period.base.name}` "
        f"(`sql/bigquery/{period.name}.sql`, shown with the default time zone "
        f"{DEFAULT_TIMEZONE}), refreshed after that table loads.",
        "",
    ]
    lines += _column_rows(period.columns)
    lines += _run_record_section(
        AUDIT_TABLE, "audit", FRESHNESS_VIEW, "refreshed when a run appends its audit rows"
    )
    lines += _run_record_section(
        METRICS_TABLE, "metrics", HEALTH_VIEW, "refreshed when a run writes its metrics"
    )
    return lines


def _run_record_section(
    table: AuditTableSpec, kind: str, view: AuditViewSpec, refreshed: str
) -> list[str]:
    """A table the runs write, and the view over it, each with its columns."""
    lines = ["", f"## `{table.name}` ({kind})", "", table.description, ""]
    lines += _column_rows(table.columns)
    lines += [
        "",
        f"## `{view.name}` (view)",
        "",
        view.description,
        "",
        f"`CREATE OR REPLACE VIEW` over `{table.name}` (`sql/bigquery/{view.name}.sql`), "
        f"{refreshed}.",
        "",
    ]
    return lines + _column_rows(view.columns)


def render_settings_table(readme: str) -> str:
    """``readme`` with the Configuration table between the settings markers generated from
    the one declaration of the settings (``partyhelp_pipeline/settings/declaration.py``)."""
    head, begin, rest = readme.partition(SETTINGS_BEGIN)
    _, end, tail = rest.partition(SETTINGS_END)
    if not (begin and end):
        raise ValueError(f"README.md lacks the {SETTINGS_BEGIN} ... {SETTINGS_END} markers")
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [
        f"| `{variable}` | {default} | {meaning} |"
        for variable, default, meaning in settings_table()
    ]
    return f"{head}{begin}\n\n" + "\n".join(rows) + f"\n\n{end}{tail}"


def main() -> int:
    """Write the generated files, or with --check report whether each is current."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    outputs = {
        OUTPUT: render(),
        README: render_settings_table(README.read_text(encoding="utf-8")),
        **render_sql_files(),
    }
    stale = [
        path
        for path, text in outputs.items()
        if (path.read_text(encoding="utf-8") if path.exists() else "") != text
    ]
    if args.check:
        for path in stale:
            print(f"{path} is out of date: run python -m scripts.generate_docs", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(outputs[path], encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
