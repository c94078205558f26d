-- Reconciliation totals of ph_credit_transactions over one id range: row count and money sums in cents.
SELECT
    COUNT(*)                                    AS row_count,
    CAST(SUM(ct.amount) * 100 AS SIGNED)        AS amount,
    CAST(SUM(ct.balance_after) * 100 AS SIGNED) AS balance_after
FROM credit_transactions AS ct
WHERE ct.id BETWEEN %(first_id)s AND %(last_id)s
