-- Generated from partyhelp_pipeline/spec by `python -m scripts.generate_docs`; do not edit.
-- ph_venues: reconciliation totals over one key range (money in cents), and the freshness column's newest value.
SELECT
    COUNT(*) AS `row_count`,
    CAST(SUM(`v`.`credit_balance`) * 100 AS SIGNED) AS `credit_balance`,
    UNIX_TIMESTAMP(MAX(IF(`v`.`updated_at` <= UTC_TIMESTAMP() + INTERVAL 1 HOUR, `v`.`updated_at`, NULL))) AS `freshness_newest`,
    UNIX_TIMESTAMP() AS `snapshot_at`
FROM `venues` AS `v`
WHERE `v`.`id` BETWEEN %(first_id)s AND %(last_id)s
