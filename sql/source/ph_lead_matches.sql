-- Generated from partyhelp_pipeline/spec by `python -m scripts.generate_docs`; do not edit.
-- ph_lead_matches: One row per lead-venue match, for the notified -> viewed -> purchased funnel.
SELECT
    `lm`.`id`                                                         AS `lead_match_id`,
    `lm`.`lead_id`                                                    AS `lead_id`,
    `lm`.`venue_id`                                                   AS `venue_id`,
    `lm`.`match_score` + 0E0                                          AS `match_score`,
    `lm`.`status`                                                     AS `status`,
    CAST(UNIX_TIMESTAMP(`lm`.`notified_at`) * 1000000 AS SIGNED)      AS `notified_at`,
    CAST(UNIX_TIMESTAMP(`lm`.`viewed_at`) * 1000000 AS SIGNED)        AS `viewed_at`,
    CAST(UNIX_TIMESTAMP(`lm`.`purchased_at`) * 1000000 AS SIGNED)     AS `purchased_at`
FROM `lead_matches` AS `lm`
WHERE `lm`.`id` BETWEEN %(first_id)s AND %(last_id)s
ORDER BY `lm`.`id`
