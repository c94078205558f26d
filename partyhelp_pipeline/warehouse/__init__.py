"""BigQuery side of the sync, one module per job:

- ``target``: the ``Warehouse`` a task resolves once from the settings (client, dataset,
  bounds), the dataset itself, and the query and table helpers every job shares;
- ``labels``: the labels of jobs (run, table, day) and of the dataset, tables and views;
- ``load``: the manifest's parts into a staging table, reconciled against the source;
- ``history``: ``ph_<table>_history``, one partition per ``sync_date``;
- ``audit``: ``ph_sync_runs``, appended once a run ends, and its last published count;
- ``publish``: the row-drop check, the atomic copy over the current table, staging cleanup;
- ``replace``: ``replace_table``, which composes load, history and publish;
- ``views``: the reporting views and ``ph_sync_freshness``.
"""
