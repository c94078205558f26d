-- Generated from partyhelp_pipeline/spec by `python -m scripts.generate_docs`; do not edit.
SELECT
    table_name AS `table_name`,
    sync_date AS `sync_date`,
    ended_at AS `synced_at`,
    ROUND(TIMESTAMP_DIFF(CURRENT_TIMESTAMP(), ended_at, SECOND) / 3600, 2) AS `hours_since`,
    rows_loaded AS `rows_loaded`,
    LEAD(rows_loaded) OVER newest_first AS `previous_rows_loaded`,
    rows_loaded - LEAD(rows_loaded) OVER newest_first AS `rows_change`,
    flow_run_id AS `flow_run_id`
FROM `PROJECT.DATASET.ph_sync_runs`
WHERE status = 'Completed' AND IFNULL(current_replaced, TRUE)
QUALIFY ROW_NUMBER() OVER newest_first = 1
WINDOW newest_first AS (PARTITION BY table_name ORDER BY ended_at DESC, sync_date DESC)
