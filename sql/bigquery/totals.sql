-- Reconciliation totals of one loaded table: row count and money sums.
-- {table} and {money_sums} are built from tasks/specs.py with validated, quoted identifiers.
SELECT
    COUNT(*) AS row_count{money_sums}
FROM {table}
