"""The built-in reconciliation costs one aggregate query per table on each side, and the
source's rows are streamed once: never a second full read.

One real sync of all five tables, several chunks each, as the SELECT-only user, with
MariaDB's general query log on: every statement that user sent is classified against the
project's own SQL files. On the BigQuery side, the emulator's job list holds every query
of the run.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from partyhelp_pipeline.clients import bigquery_client
from partyhelp_pipeline.spec import TABLES, TableSpec
from partyhelp_pipeline.spec.sql import flattening_query, lookup_query, totals_query
from tests.conftest import admin_connection
from tests.faultkit import Source, environment, new_target, source_database, sync_on

pytestmark = pytest.mark.usefixtures("stack")

SYNC_DATE = dt.date(2026, 11, 24)
CHUNK_ROWS = 8  # several chunks per table: one stream and one aggregate each


def _statement_pattern(sql: str) -> re.Pattern[str]:
    """The SQL file as the driver sends it: each ``%(name)s`` filled with an integer."""
    return re.compile(re.sub(r"%\\\(\w+\\\)s", r"-?\\d+", re.escape(sql.strip())))


# What else may touch a source table: planning the chunks reads ids only (the range, then
# one index probe per chunk boundary).
_PLANNING = re.compile(
    r"SELECT MIN\(`id`\), MAX\(`id`\) FROM `(\w+)`"
    r"|SELECT MIN\(`id`\) FROM `(\w+)` WHERE `id` > \d+",
    re.IGNORECASE,
)
# Besides the aggregate, a load reads one DATE column of the current table (which day it
# holds, so an older day's replay leaves it alone) and counts its day's history partition.
_DAY_READ = re.compile(r"SELECT MAX\(sync_date\) AS day FROM `[\w.-]+`")


@pytest.fixture(scope="module")
def logged_run() -> Iterator[dict[str, Any]]:
    """One sync with the general query log on; the reader's statements and the run's jobs."""
    with source_database("ph_rec", scale=0.05, seed=8) as source:
        env = new_target(source, "rec", PARTYHELP_CHUNK_ROWS=str(CHUNK_ROWS))
        with admin_connection() as connection, connection.cursor() as cursor:
            cursor.execute("SELECT @@global.log_output, @@global.general_log, NOW(6)")
            log_output, general_log, started = cursor.fetchone()
            cursor.execute("SET GLOBAL log_output = 'TABLE'")
            cursor.execute("SET GLOBAL general_log = 1")
        try:
            with environment(env) as settings:
                state = sync_on(SYNC_DATE)
        finally:
            with admin_connection() as connection, connection.cursor() as cursor:
                cursor.execute(f"SET GLOBAL general_log = {int(general_log)}")
                cursor.execute("SET GLOBAL log_output = %s", (log_output,))
                cursor.execute(
                    "SELECT CONVERT(argument USING utf8mb4) FROM mysql.general_log "
                    "WHERE event_time >= %s AND command_type = 'Query' "
                    "AND user_host LIKE %s",
                    (started, f"{source.user}[%"),
                )
                statements = [row[0] for row in cursor.fetchall()]
        assert state.is_completed(), state.message
        client = bigquery_client(settings)
        queries = [
            job.query
            for job in client.list_jobs(all_users=True)
            if job.job_type == "query" and settings.bq_dataset in (job.query or "")
        ]
        yield {"source": source, "settings": settings, "statements": statements, "queries": queries}


def _chunks(source: Source, spec: TableSpec) -> int:
    """The chunks of the plan: windows of ``CHUNK_ROWS`` ids, each starting at the first id
    after the one before (so gaps make no empty chunk)."""
    ids = [row[0] for row in source.sql(f"SELECT id FROM `{spec.source_table}` ORDER BY id")]
    assert len(ids) > CHUNK_ROWS  # two chunks at least
    chunks, start = 1, ids[0]
    while start + CHUNK_ROWS - 1 < ids[-1]:
        chunks += 1
        start = next(i for i in ids if i > start + CHUNK_ROWS - 1)
    return chunks


def test_each_chunk_streams_its_rows_once_reads_each_lookup_once_and_sends_one_aggregate(
    logged_run: dict[str, Any],
) -> None:
    statements = logged_run["statements"]
    counted: dict[str, Counter[str]] = {
        "stream": Counter(),
        "aggregate": Counter(),
        "lookup": Counter(),
    }
    unclassified = []
    for statement in statements:
        text = statement.strip()
        kind = (
            next(
                (
                    (name, "stream")
                    for name, spec in TABLES.items()
                    if _statement_pattern(flattening_query(spec)).fullmatch(text)
                ),
                None,
            )
            or next(
                (
                    (name, "aggregate")
                    for name, spec in TABLES.items()
                    if _statement_pattern(totals_query(spec)).fullmatch(text)
                ),
                None,
            )
            or next(
                (
                    (name, "lookup")
                    for name, spec in TABLES.items()
                    for lookup in spec.lookups
                    if _statement_pattern(lookup_query(spec, lookup)).fullmatch(text)
                ),
                None,
            )
        )
        if kind:
            counted[kind[1]][kind[0]] += 1
        elif not _PLANNING.fullmatch(text):
            unclassified.append(text)
    # No other statement reads a source table (session settings, the snapshot, the
    # information_schema drift check only).
    source_tables = {spec.source_table for spec in TABLES.values()}
    readers = [
        s
        for s in unclassified
        if any(re.search(rf"\b(FROM|JOIN)\s+`?{t}`?\b", s, re.IGNORECASE) for t in source_tables)
    ]
    assert readers == []
    for name, spec in TABLES.items():
        chunks = _chunks(logged_run["source"], spec)
        assert counted["stream"][name] == chunks, (name, counted["stream"][name], chunks)
        assert counted["aggregate"][name] == chunks, (name, counted["aggregate"][name], chunks)
        lookups = chunks * len(spec.lookups)  # read in each chunk's own snapshot
        assert counted["lookup"][name] == lookups, (name, counted["lookup"][name], lookups)
    assert sum(1 for s in statements if _PLANNING.fullmatch(s.strip())) > len(TABLES)


def test_bigquery_is_read_once_per_table_by_one_aggregate(logged_run: dict[str, Any]) -> None:
    settings = logged_run["settings"]
    reads: Counter[str] = Counter()
    for query in logged_run["queries"]:
        if not re.match(r"\s*(--[^\n]*\n\s*)*SELECT", query) or _DAY_READ.fullmatch(query):
            continue  # DDL (the views, the history transaction), or the table's day
        for name in TABLES:
            if re.search(rf"\.(_staging_{name}_\w+|{name})`", query):
                assert re.search(r"COUNT\(\*\) AS row_count", query), query
                assert "GROUP BY" not in query.upper()
                reads[name] += 1
    assert reads == Counter({name: 1 for name in TABLES}), logged_run["queries"]
    assert sum(1 for q in logged_run["queries"] if _DAY_READ.fullmatch(q)) == len(TABLES)
    assert all(settings.bq_dataset in q for q in logged_run["queries"])
