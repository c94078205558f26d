-- Generated from partyhelp_pipeline/spec by `python -m scripts.generate_docs`; do not edit.
-- ph_credit_transactions: reconciliation totals over one key range (money in cents).
SELECT
    COUNT(*) AS `row_count`,
    CAST(SUM(`ct`.`amount`) * 100 AS SIGNED) AS `amount`,
    CAST(SUM(`ct`.`balance_after`) * 100 AS SIGNED) AS `balance_after`
FROM `credit_transactions` AS `ct`
WHERE `ct`.`id` BETWEEN %(first_id)s AND %(last_id)s
