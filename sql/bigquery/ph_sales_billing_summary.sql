-- Generated from partyhelp_pipeline/spec by `python -m scripts.generate_docs`; do not edit.
SELECT
    `lead_purchase_id`,
    `lead_id`,
    `venue_id`,
    `occasion_label`,
    `occasion_type`,
    `preferred_date`,
    `guest_count`,
    `venue_business_name`,
    `venue_area_name`,
    `amount_paid`,
    `discount_percent`,
    `lead_status`,
    `purchased_at`,
    `sync_date`
FROM `PROJECT.DATASET.ph_lead_purchases`
