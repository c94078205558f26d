"""A sync from a stale MariaDB replica (issue 21, section 1): a real primary and replica
(tests/replica_mariadb.py), the replica stopped with ``STOP SLAVE`` while the primary writes.

- the harness itself: the replica follows the primary until it is stopped, then stays
  behind while the primary writes, and the sync's reader can read it but not write to it;
- the sync from the replica: fresh while it follows; once stopped, it warns past
  ``warn_after`` (and publishes the replica's rows), then fails past the limit and publishes
  nothing, while the primary holds rows the replica never got.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from partyhelp_pipeline.spec import TABLES
from tests import faultkit
from tests.replica_mariadb import ReplicaPair, ReplicationError, replicated_source

# Starts MariaDB servers of its own (tests/conftest.py: such a module is marked by hand).
pytestmark = pytest.mark.services

WRITTEN_TABLES = ("leads", "lead_purchases", "credit_transactions")
ACCESS_REFUSED = (1142, 1290)  # command denied to the user; the server is read-only


@pytest.fixture()
def replica_pair() -> Iterator[ReplicaPair]:
    """A fresh primary and replica for each test (about 3 s): a test may stop replication."""
    with replicated_source() as pair:
        yield pair


def ids_in(connection: pymysql.Connection, written: dict[str, list[int]]) -> dict[str, list[int]]:
    """Which of the ``written`` ids each table holds on ``connection``'s server."""
    found: dict[str, list[int]] = {}
    with connection.cursor() as cursor:
        for table, ids in written.items():
            cursor.execute(f"SELECT id FROM `{table}` WHERE id IN %s ORDER BY id", (ids,))
            found[table] = [int(row[0]) for row in cursor.fetchall()]
    return found


def table_counts(connection: pymysql.Connection) -> dict[str, int]:
    """Rows per written table."""
    counts: dict[str, int] = {}
    with connection.cursor() as cursor:
        for table in WRITTEN_TABLES:
            cursor.execute(f"SELECT COUNT(*) FROM `{table}`")
            counts[table] = int(cursor.fetchone()[0])
    return counts


def threads_running(pair: ReplicaPair) -> tuple[str, str]:
    """The replica's (IO thread, SQL thread) running flags, as SHOW SLAVE STATUS says."""
    status = pair.replica_status()
    return status["Slave_IO_Running"], status["Slave_SQL_Running"]


def test_replica_follows_primary_until_stopped(replica_pair: ReplicaPair) -> None:
    with replica_pair.primary() as primary, replica_pair.replica() as replica:
        loaded = table_counts(primary)
        assert all(count > 0 for count in loaded.values()), loaded
        assert table_counts(replica) == loaded  # the synthetic load came by replication
        followed = replica_pair.write_on_primary(3)
        assert len(followed["leads"]) == len(followed["lead_purchases"]) == 3
        replica_pair.wait_caught_up()
        assert ids_in(replica, followed) == followed
    assert threads_running(replica_pair) == ("Yes", "Yes")

    replica_pair.stop_replication()
    missed = replica_pair.write_on_primary(2)
    with replica_pair.primary() as primary, replica_pair.replica() as replica:
        assert ids_in(primary, missed) == missed
        assert ids_in(replica, missed) == {table: [] for table in WRITTEN_TABLES}
        assert table_counts(replica) == {
            table: loaded[table] + len(followed[table]) for table in WRITTEN_TABLES
        }
    assert threads_running(replica_pair) == ("No", "No")
    assert replica_pair.replica_status()["Seconds_Behind_Master"] is None
    with pytest.raises(ReplicationError, match="Slave_SQL_Running=No"):
        replica_pair.wait_caught_up(timeout=1)

    with replica_pair.reader_connection() as reader, reader.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM leads")
        assert cursor.fetchone()[0] == loaded["leads"] + 3
        with pytest.raises(pymysql.err.OperationalError) as refused:
            cursor.execute("DELETE FROM leads WHERE id = %s", (followed["leads"][0],))
        assert refused.value.args[0] in ACCESS_REFUSED
    with replica_pair.replica() as replica:
        assert ids_in(replica, followed) == followed  # the reader's DELETE removed nothing

    # Started again, it fetches what it missed: the stop was the only thing holding it back.
    replica_pair.start_replication()
    replica_pair.wait_caught_up()
    with replica_pair.replica() as replica:
        assert ids_in(replica, missed) == missed


# The limits of the syncs below, small enough to pass in a test's minute: past 18 s a
# warning, past 54 s a failure. The lag grows for real: the replica is stopped.
LIMITS = {"PARTYHELP_WARN_SOURCE_AGE_HOURS": "0.005", "PARTYHELP_MAX_SOURCE_AGE_HOURS": "0.015"}
SYNCED = ["ph_leads", "ph_lead_purchases", "ph_credit_transactions"]
DAY = dt.date(2026, 11, 25)  # the test clock's day; the freshness is on the source's clock


def wait_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def published_ids(settings: Any, table: str) -> list[int]:
    """The driving table's ids in the published ``table``."""
    key = TABLES[table].primary_key
    rows = faultkit.query(settings, f"SELECT {key} FROM `{settings.bq_dataset}.{table}`")
    return sorted(int(row[key]) for row in rows)


def source_ids(connection: pymysql.Connection, table: str) -> list[int]:
    """The ids of ``table``'s driving table on ``connection``'s server."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM `{TABLES[table].source_table}` ORDER BY id")
        return [int(row[0]) for row in cursor.fetchall()]


def freshness_of(state: Any) -> dict[str, str]:
    return {table: state.result()["tables"][table]["freshness"] for table in SYNCED}


def test_a_sync_from_a_stopped_replica_warns_then_fails_and_publishes_nothing(
    replica_pair: ReplicaPair,
) -> None:
    source = faultkit.Source(replica_pair.database, replica_pair.reader)
    env = faultkit.new_target(source, "replica", **replica_pair.reader_env(), **LIMITS)
    with faultkit.environment(env) as settings:
        replica_pair.write_on_primary(2)  # the app writes; the replica follows
        replica_pair.wait_caught_up()
        newest = time.monotonic()
        healthy = faultkit.sync_on(DAY, tables=SYNCED)
        assert healthy.is_completed(), healthy.message
        assert freshness_of(healthy) == dict.fromkeys(SYNCED, "fresh")

        replica_pair.stop_replication()
        missed = replica_pair.write_on_primary(2)  # the primary keeps writing
        wait_until(newest + 22)
        lagging = faultkit.sync_on(DAY, tables=SYNCED)
        assert lagging.is_completed(), lagging.message
        assert freshness_of(lagging) == dict.fromkeys(SYNCED, "warn")
        published = faultkit.table_states(settings)
        with replica_pair.replica() as replica:  # what was published is the replica's
            assert ids_in(replica, missed) == {table: [] for table in WRITTEN_TABLES}
            for table in SYNCED:
                assert published_ids(settings, table) == source_ids(replica, table)

        missed_more = replica_pair.write_on_primary(2)
        wait_until(newest + 60)
        stale = faultkit.sync_on(DAY, tables=SYNCED)
        assert stale.is_failed()
        for table in SYNCED:
            assert re.search(
                rf"{table}: the source is stale: newest \w+_at [-\d: ]+ UTC, \d+ s old at "
                r"the export's snapshot \(PARTYHELP_MAX_SOURCE_AGE_HOURS 54 s\); not published",
                stale.message,
            ), stale.message
        assert faultkit.table_states(settings) == published  # nothing published
        recorded = faultkit.query(
            settings,
            f"SELECT table_name, freshness_status FROM `{settings.bq_dataset}.ph_sync_metrics`",
        )
    assert sorted((r["table_name"], r["freshness_status"]) for r in recorded) == sorted(
        (table, "warn") for table in SYNCED
    )
    with replica_pair.primary() as primary:  # the primary has what the replica missed
        assert ids_in(primary, missed) == missed and ids_in(primary, missed_more) == missed_more
