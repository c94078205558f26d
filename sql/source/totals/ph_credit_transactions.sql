-- Generated from partyhelp_pipeline/spec by `python -m scripts.generate_docs`; do not edit.
-- ph_credit_transactions: reconciliation totals over one key range (money in cents), and the freshness column's newest value.
SELECT
    COUNT(*) AS `row_count`,
    CAST(SUM(`ct`.`amount`) * 100 AS SIGNED) AS `amount`,
    CAST(SUM(`ct`.`balance_after`) * 100 AS SIGNED) AS `balance_after`,
    UNIX_TIMESTAMP(MAX(IF(`ct`.`created_at` <= UTC_TIMESTAMP() + INTERVAL 1 HOUR, `ct`.`created_at`, NULL))) AS `freshness_newest`,
    UNIX_TIMESTAMP() AS `snapshot_at`
FROM `credit_transactions` AS `ct`
WHERE `ct`.`id` BETWEEN %(first_id)s AND %(last_id)s
