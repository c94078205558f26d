-- Generated from partyhelp_pipeline/spec by `python -m scripts.generate_docs`; do not edit.
-- ph_credit_transactions: lookup venues, joined in Arrow on ct.venue_id
SELECT
    `v`.`id`                                                          AS `lookup_key`,
    `v`.`business_name`                                               AS `venue_business_name`
FROM `venues` AS `v`
WHERE `v`.`id` <= 9223372036854775807
