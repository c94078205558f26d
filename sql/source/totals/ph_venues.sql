-- Generated from partyhelp_pipeline/spec by `python -m scripts.generate_docs`; do not edit.
-- ph_venues: reconciliation totals over one key range (money in cents).
SELECT
    COUNT(*) AS `row_count`,
    CAST(SUM(`v`.`credit_balance`) * 100 AS SIGNED) AS `credit_balance`
FROM `venues` AS `v`
WHERE `v`.`id` BETWEEN %(first_id)s AND %(last_id)s
