"""The Partyhelp reporting pipeline, as plain functions: MySQL -> spec -> Arrow -> Avro ->
GCS -> BigQuery. The Prefect tasks (``tasks/``) and flows (``flows/``) orchestrate it;
``docs/ARCHITECTURE.md`` describes the stages and the path of a row.
"""
