-- Reconciliation totals of ph_venues over one id range: row count and money sums in cents.
SELECT
    COUNT(*)                                    AS row_count,
    CAST(SUM(v.credit_balance) * 100 AS SIGNED) AS credit_balance
FROM venues AS v
WHERE v.id BETWEEN %(first_id)s AND %(last_id)s
