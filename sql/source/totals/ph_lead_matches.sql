-- Generated from partyhelp_pipeline/spec by `python -m scripts.generate_docs`; do not edit.
-- ph_lead_matches: reconciliation totals over one key range (money in cents), and the freshness column's newest value.
SELECT
    COUNT(*) AS `row_count`,
    UNIX_TIMESTAMP(MAX(IF(`lm`.`updated_at` <= UTC_TIMESTAMP() + INTERVAL 1 HOUR, `lm`.`updated_at`, NULL))) AS `freshness_newest`,
    UNIX_TIMESTAMP() AS `snapshot_at`
FROM `lead_matches` AS `lm`
WHERE `lm`.`id` BETWEEN %(first_id)s AND %(last_id)s
