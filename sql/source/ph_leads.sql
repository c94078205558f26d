-- Generated from partyhelp_pipeline/spec by `python -m scripts.generate_docs`; do not edit.
-- ph_leads: One row per lead (a customer event request), with readable labels.
SELECT
    `l`.`id`                                                          AS `lead_id`,
    `l`.`occasion_type`                                               AS `occasion_type`,
    `ot`.`label`                                                      AS `occasion_label`,
    `l`.`guest_count`                                                 AS `guest_count`,
    `l`.`guest_count_display`                                         AS `guest_count_display`,
    `l`.`preferred_date` + 0                                          AS `preferred_date`,
    `l`.`suburb`                                                      AS `suburb`,
    `l`.`suburb_preferences`                                          AS `suburb_preferences`,
    `l`.`location_selections`                                         AS `location_selections`,
    `l`.`status`                                                      AS `status`,
    CAST(`l`.`base_price` * 100 AS SIGNED)                            AS `base_price`,
    CAST(`l`.`current_price` * 100 AS SIGNED)                         AS `current_price`,
    `l`.`discount_percent`                                            AS `discount_percent`,
    `l`.`purchase_target`                                             AS `purchase_target`,
    `l`.`purchase_count`                                              AS `purchase_count`,
    CAST(UNIX_TIMESTAMP(`l`.`distributed_at`) * 1000000 AS SIGNED)    AS `distributed_at`,
    CAST(UNIX_TIMESTAMP(`l`.`fulfilled_at`) * 1000000 AS SIGNED)      AS `fulfilled_at`,
    CAST(UNIX_TIMESTAMP(`l`.`expires_at`) * 1000000 AS SIGNED)        AS `expires_at`,
    CAST(UNIX_TIMESTAMP(`l`.`created_at`) * 1000000 AS SIGNED)        AS `created_at`,
    IF(%(include_pii)s, `l`.`email`, NULL)                            AS `email`,
    IF(%(include_pii)s, `l`.`phone`, NULL)                            AS `phone`
FROM `leads` AS `l`
LEFT JOIN `occasion_types` AS `ot` ON `ot`.`key` = `l`.`occasion_type`
WHERE `l`.`id` BETWEEN %(first_id)s AND %(last_id)s
ORDER BY `l`.`id`
