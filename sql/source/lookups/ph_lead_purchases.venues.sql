-- Generated from partyhelp_pipeline/spec by `python -m scripts.generate_docs`; do not edit.
-- ph_lead_purchases: lookup venues, joined in Arrow on lp.venue_id
SELECT
    `v`.`id`                                                          AS `lookup_key`,
    `v`.`business_name`                                               AS `venue_business_name`,
    `a`.`name`                                                        AS `venue_area_name`
FROM `venues` AS `v`
LEFT JOIN `areas` AS `a` ON `a`.`id` = `v`.`area_id`
WHERE `v`.`id` <= 9223372036854775807
