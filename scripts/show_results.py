"""Print what the last sync left in BigQuery: rows per table and revenue by occasion."""

from __future__ import annotations

from partyhelp_pipeline.clients import bigquery_client
from partyhelp_pipeline.settings import load_settings
from partyhelp_pipeline.spec import AUDIT_TABLE, SALES_BILLING_SUMMARY, TABLES


def main() -> None:
    """Query the dataset named by the PARTYHELP_* settings and print two small tables."""
    settings = load_settings()
    client = bigquery_client(settings)
    print(f"\nBigQuery dataset {settings.bq_project}.{settings.bq_dataset}:")
    print(f"  {'table':<26}{'rows':>10}")
    for name in [*TABLES, AUDIT_TABLE.name]:
        table = client.get_table(settings.table_ref(name))
        print(f"  {name:<26}{table.num_rows:>10,}")
    view = settings.quoted_table_ref(SALES_BILLING_SUMMARY.name)
    rows = client.query(
        f"SELECT IFNULL(occasion_label, '(lead gone)') AS occasion, COUNT(*) AS purchases, "
        f"SUM(amount_paid) AS revenue FROM {view} GROUP BY occasion ORDER BY revenue DESC"
    ).result()
    print(f"\nRevenue by occasion ({SALES_BILLING_SUMMARY.name}):")
    print(f"  {'occasion':<28}{'purchases':>10}{'revenue AUD':>16}")
    total = 0
    for row in rows:
        total += row["revenue"] or 0
        print(f"  {row['occasion']:<28}{row['purchases']:>10,}{row['revenue'] or 0:>16,.2f}")
    print(f"  {'total':<28}{'':>10}{total:>16,.2f}")


if __name__ == "__main__":
    main()
