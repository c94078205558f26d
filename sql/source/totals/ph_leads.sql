-- Generated from partyhelp_pipeline/spec by `python -m scripts.generate_docs`; do not edit.
-- ph_leads: reconciliation totals over one key range (money in cents), and the freshness column's newest value.
SELECT
    COUNT(*) AS `row_count`,
    CAST(SUM(`l`.`base_price`) * 100 AS SIGNED) AS `base_price`,
    CAST(SUM(`l`.`current_price`) * 100 AS SIGNED) AS `current_price`,
    UNIX_TIMESTAMP(MAX(IF(`l`.`updated_at` <= UTC_TIMESTAMP() + INTERVAL 1 HOUR, `l`.`updated_at`, NULL))) AS `freshness_newest`,
    UNIX_TIMESTAMP() AS `snapshot_at`
FROM `leads` AS `l`
WHERE `l`.`id` BETWEEN %(first_id)s AND %(last_id)s
