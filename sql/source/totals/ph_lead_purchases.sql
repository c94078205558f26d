-- Reconciliation totals of ph_lead_purchases over one id range: row count and money sums in cents.
SELECT
    COUNT(*)                                  AS row_count,
    CAST(SUM(lp.amount_paid) * 100 AS SIGNED) AS amount_paid
FROM lead_purchases AS lp
WHERE lp.id BETWEEN %(first_id)s AND %(last_id)s
