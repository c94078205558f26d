-- Generated from partyhelp_pipeline/spec by `python -m scripts.generate_docs`; do not edit.
SELECT
    `sync_date`,
    `table_name`,
    `rows`,
    `rows_added`,
    `rows_removed`,
    `freshness_column`,
    `newest_at`,
    `freshness_hours`,
    `freshness_status`,
    `anomalies`,
    IF(IFNULL(anomalies, '') = '', 0, ARRAY_LENGTH(SPLIT(anomalies, ','))) AS `anomaly_count`,
    IF(IFNULL(anomalies, '') = '', 0, ARRAY_LENGTH(SPLIT(anomalies, ','))) = 0 AND IFNULL(freshness_status, '') NOT IN ('warn', 'stale') AS `is_normal`,
    `mode`,
    `recorded_at`
FROM `PROJECT.DATASET.ph_sync_metrics`
WHERE sync_date > DATE_SUB(CURRENT_DATE(), INTERVAL 90 DAY)
