-- Reconciliation totals of ph_leads over one id range: row count and money sums in cents.
SELECT
    COUNT(*)                                 AS row_count,
    CAST(SUM(l.base_price) * 100 AS SIGNED)    AS base_price,
    CAST(SUM(l.current_price) * 100 AS SIGNED) AS current_price
FROM leads AS l
WHERE l.id BETWEEN %(first_id)s AND %(last_id)s
