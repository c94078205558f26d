"""Prefect tasks: thin, typed wrappers over the plain functions of ``partyhelp_pipeline``.

``options`` holds what every task shares (retries, the run's settings, the rule of what
crosses a task boundary); ``preflight`` the run's first checks; ``mysql_to_gcs`` the export
tasks; ``kept_exports`` finding earlier runs' exports (a replay, a backfill);
``gcs_to_bigquery`` the load, view and audit tasks; ``locks`` one publish of a table at a
time.
"""
