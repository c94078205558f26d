"""Prefect tasks: thin, typed wrappers over the plain functions of ``partyhelp_pipeline``.

``options`` holds what every task shares (retries, settings); ``mysql_to_gcs`` the export
tasks, ``gcs_to_bigquery`` the load, view and audit tasks.
"""
