-- Generated from partyhelp_pipeline/spec by `python -m scripts.generate_docs`; do not edit.
-- ph_lead_purchases: reconciliation totals over one key range (money in cents), and the freshness column's newest value.
SELECT
    COUNT(*) AS `row_count`,
    CAST(SUM(`lp`.`amount_paid`) * 100 AS SIGNED) AS `amount_paid`,
    UNIX_TIMESTAMP(MAX(IF(`lp`.`created_at` <= UTC_TIMESTAMP() + INTERVAL 1 HOUR, `lp`.`created_at`, NULL))) AS `freshness_newest`,
    UNIX_TIMESTAMP() AS `snapshot_at`
FROM `lead_purchases` AS `lp`
WHERE `lp`.`id` BETWEEN %(first_id)s AND %(last_id)s
