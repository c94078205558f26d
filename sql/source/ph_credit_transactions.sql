-- Generated from partyhelp_pipeline/spec by `python -m scripts.generate_docs`; do not edit.
-- ph_credit_transactions: One row per credit movement of a venue: top-ups, purchases, refunds.
SELECT
    `ct`.`id`                                                         AS `credit_transaction_id`,
    `ct`.`venue_id`                                                   AS `venue_id`,
    `ct`.`type`                                                       AS `type`,
    CAST(`ct`.`amount` * 100 AS SIGNED)                               AS `amount`,
    CAST(`ct`.`balance_after` * 100 AS SIGNED)                        AS `balance_after`,
    `ct`.`lead_purchase_id`                                           AS `lead_purchase_id`,
    `ct`.`stripe_payment_intent_id`                                   AS `stripe_payment_intent_id`,
    `ct`.`description`                                                AS `description`,
    `ct`.`admin_note`                                                 AS `admin_note`,
    CAST(UNIX_TIMESTAMP(`ct`.`created_at`) * 1000000 AS SIGNED)       AS `created_at`
FROM `credit_transactions` AS `ct`
WHERE `ct`.`id` BETWEEN %(first_id)s AND %(last_id)s
ORDER BY `ct`.`id`
