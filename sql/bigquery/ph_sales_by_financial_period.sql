-- Generated from partyhelp_pipeline/spec by `python -m scripts.generate_docs`; do not edit.
SELECT
    CONCAT('FY', CAST(fy_start AS STRING), '-', LPAD(CAST(MOD(fy_start + 1, 100) AS STRING), 2, '0')) AS `financial_year`,
    DIV(MOD(EXTRACT(MONTH FROM local_date) + 5, 12), 3) + 1 AS `fy_quarter`,
    DATE_TRUNC(local_date, MONTH) AS `month`,
    `occasion_type` AS `occasion_type`,
    `occasion_label` AS `occasion_label`,
    `venue_id` AS `venue_id`,
    `venue_business_name` AS `venue_business_name`,
    `venue_area_name` AS `venue_area_name`,
    COUNT(*) AS `purchases`,
    CAST(IFNULL(SUM(`amount_paid`), 0) AS NUMERIC) AS `revenue`,
    CAST(ROUND(IFNULL(SUM(`amount_paid`), 0) / COUNT(*), 2) AS NUMERIC) AS `average_sale`
FROM (
    SELECT *, EXTRACT(YEAR FROM local_date) - IF(EXTRACT(MONTH FROM local_date) < 7, 1, 0) AS fy_start
    FROM (SELECT *, DATE(`purchased_at`, 'Australia/Melbourne') AS local_date FROM `PROJECT.DATASET.ph_lead_purchases`)
)
GROUP BY `financial_year`, `fy_quarter`, `month`, `occasion_type`, `occasion_label`, `venue_id`, `venue_business_name`, `venue_area_name`
