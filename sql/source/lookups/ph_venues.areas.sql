-- Generated from partyhelp_pipeline/spec by `python -m scripts.generate_docs`; do not edit.
-- ph_venues: lookup areas, joined in Arrow on v.area_id
SELECT
    `a`.`id`                                                          AS `lookup_key`,
    `a`.`name`                                                        AS `area_name`
FROM `areas` AS `a`
WHERE `a`.`id` <= 9223372036854775807
