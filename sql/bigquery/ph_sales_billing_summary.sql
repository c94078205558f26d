-- ph_sales_billing_summary: the billing view over ph_lead_purchases.
-- {columns} and {source_table} are filled from tasks/specs.py with validated, quoted identifiers.
SELECT
    {columns}
FROM {source_table}
