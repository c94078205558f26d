-- Generated from partyhelp_pipeline/spec by `python -m scripts.generate_docs`; do not edit.
-- ph_venues: One row per venue, flattened with its area name; balance as at the sync.
SELECT
    `v`.`id`                                                          AS `venue_id`,
    `v`.`business_name`                                               AS `business_name`,
    `v`.`area_id`                                                     AS `area_id`,
    `v`.`suburb`                                                      AS `suburb`,
    `v`.`state`                                                       AS `state`,
    `v`.`postcode`                                                    AS `postcode`,
    `v`.`status`                                                      AS `status`,
    CAST(`v`.`credit_balance` * 100 AS SIGNED)                        AS `credit_balance`,
    CAST(UNIX_TIMESTAMP(`v`.`approved_at`) * 1000000 AS SIGNED)       AS `approved_at`,
    CAST(UNIX_TIMESTAMP(`v`.`last_activity_at`) * 1000000 AS SIGNED)  AS `last_activity_at`,
    CAST(UNIX_TIMESTAMP(`v`.`created_at`) * 1000000 AS SIGNED)        AS `created_at`
FROM `venues` AS `v`
WHERE `v`.`id` BETWEEN %(first_id)s AND %(last_id)s
ORDER BY `v`.`id`
