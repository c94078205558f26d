-- Reconciliation totals of ph_lead_matches over one id range: the row count (no money columns).
SELECT
    COUNT(*) AS row_count
FROM lead_matches AS lm
WHERE lm.id BETWEEN %(first_id)s AND %(last_id)s
