"""Write docs/tables.md, the table reference, from the specs (never by hand).

    python -m scripts.generate_docs          # rewrite docs/tables.md
    python -m scripts.generate_docs --check  # exit 1 if it is out of date (a test runs this)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tasks.specs import AUDIT_TABLE, SALES_BILLING_SUMMARY, TABLES, Column

OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "tables.md"


def _column_rows(columns: tuple[Column, ...]) -> list[str]:
    rows = ["| column | type | mode | description |", "|---|---|---|---|"]
    rows += [f"| `{c.name}` | {c.type} | {c.mode} | {c.description} |" for c in columns]
    return rows


def render() -> str:
    """The whole reference as markdown."""
    lines = [
        "# Reporting tables",
        "",
        "Generated from `tasks/specs.py` by `python -m scripts.generate_docs`; do not edit.",
        "The same specs produce the Avro schemas of the exports and the BigQuery schemas",
        "(with these descriptions, visible in the BigQuery console).",
        "",
    ]
    for spec in TABLES.values():
        lines += [f"## `{spec.name}`", "", spec.description, "",
                  f"Source: `{spec.source_table}` (query `sql/source/{spec.query_path.name}`), "
                  f"primary key `{spec.primary_key}`.", ""]
        lines += _column_rows(spec.columns)
        if spec.orphan_checks:
            checks = ", ".join(f"`{c.key_column}` set but `{c.context_column}` NULL "
                               f"(`orphan_{c.parent}`)" for c in spec.orphan_checks)
            lines += ["", f"Orphans counted: {checks}."]
        lines.append("")
    view = SALES_BILLING_SUMMARY
    lines += [f"## `{view.name}` (view)", "", view.description, "",
              f"`CREATE OR REPLACE VIEW` over `{view.base.name}` "
              f"(`sql/bigquery/{view.query_path.name}`), refreshed after that table loads.", ""]
    lines += _column_rows(view.columns)
    lines += ["", f"## `{AUDIT_TABLE.name}` (audit)", "", AUDIT_TABLE.description, ""]
    lines += _column_rows(AUDIT_TABLE.columns)
    return "\n".join(lines) + "\n"


def main() -> int:
    """Write the file, or with --check report whether it is current."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is out of date: run python -m scripts.generate_docs",
                  file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
