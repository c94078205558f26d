-- Generated from partyhelp_pipeline/spec by `python -m scripts.generate_docs`; do not edit.
-- ph_lead_purchases: Core sales fact: one row per lead purchase with its event and venue context.
SELECT
    `lp`.`id`                                                         AS `lead_purchase_id`,
    `lp`.`lead_id`                                                    AS `lead_id`,
    `lp`.`venue_id`                                                   AS `venue_id`,
    `l`.`occasion_type`                                               AS `occasion_type`,
    `ot`.`label`                                                      AS `occasion_label`,
    `l`.`preferred_date` + 0                                          AS `preferred_date`,
    `l`.`guest_count`                                                 AS `guest_count`,
    `l`.`suburb`                                                      AS `lead_suburb`,
    `lp`.`lead_status`                                                AS `lead_status`,
    CAST(`lp`.`amount_paid` * 100 AS SIGNED)                          AS `amount_paid`,
    `lp`.`discount_percent`                                           AS `discount_percent`,
    CAST(UNIX_TIMESTAMP(`lp`.`created_at`) * 1000000 AS SIGNED)       AS `purchased_at`
FROM `lead_purchases` AS `lp`
LEFT JOIN `leads` AS `l` ON `l`.`id` = `lp`.`lead_id`
LEFT JOIN `occasion_types` AS `ot` ON `ot`.`key` = `l`.`occasion_type`
WHERE `lp`.`id` BETWEEN %(first_id)s AND %(last_id)s
ORDER BY `lp`.`id`
