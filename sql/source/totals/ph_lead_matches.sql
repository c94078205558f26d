-- Generated from partyhelp_pipeline/spec by `python -m scripts.generate_docs`; do not edit.
-- ph_lead_matches: reconciliation totals over one key range (money in cents).
SELECT
    COUNT(*) AS `row_count`
FROM `lead_matches` AS `lm`
WHERE `lm`.`id` BETWEEN %(first_id)s AND %(last_id)s
