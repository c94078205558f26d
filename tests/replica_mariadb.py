"""A real MariaDB primary and its replica, private to a test (issue 21: the stale replica).

``replicated_source()`` starts two of the machine's own ``mariadbd`` (``PrivateMariaDB``
from tests/tls_mariadb.py: own data directory, socket and free port on 127.0.0.1): a primary
with a row-based binary log and a read-only replica of it. Everything the test reads goes
through the primary and reaches the replica by replication: the source schema, a small
synthetic data set and a SELECT-only reader. The sync reads the replica as that reader
(``ReplicaPair.reader_env``); ``stop_replication`` leaves it answering every query with
data that ages while ``write_on_primary`` keeps the primary moving.

MariaDB 10.11 runs here, and its statements are the classic ones: ``STOP SLAVE``,
``START SLAVE``, ``CHANGE MASTER TO``, ``SHOW SLAVE STATUS``, ``MASTER_POS_WAIT``. MySQL 8
spells them ``STOP REPLICA``, ``START REPLICA``, ``CHANGE REPLICATION SOURCE TO``,
``SHOW REPLICA STATUS`` and ``SOURCE_POS_WAIT`` (8.0.26+); this harness is MariaDB only.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pymysql
import pymysql.cursors

from tests.conftest import READER_PASSWORD
from tests.tls_mariadb import PrivateMariaDB

DATABASE = "ph_replica"
READER = "rd_replica"
REPLICATION_USER = "repl"
PRICE = Decimal("40.00")  # of each lead ``write_on_primary`` sells
TOP_UP = Decimal("500.00")
CAUGHT_UP_SECONDS = 60
# Throwaway servers: durability is not the point, a fast load and start are.
COMMON_OPTIONS = ["--innodb-flush-log-at-trx-commit=2", "--skip-slave-start"]
PRIMARY_OPTIONS = ["--server-id=1", "--log-bin=primary-bin", "--binlog-format=ROW"]
REPLICA_OPTIONS = ["--server-id=2", "--read-only", "--skip-log-bin", "--relay-log=replica-relay"]


class ReplicationError(RuntimeError):
    """The replica did not catch up with the primary."""


@dataclass(frozen=True)
class ReplicaPair:
    """A running primary and replica; ``database`` with ``reader`` on both."""

    primary_server: PrivateMariaDB
    replica_server: PrivateMariaDB
    database: str = DATABASE
    reader: str = READER

    def primary(self) -> pymysql.Connection:
        """Root on the primary, in ``database``, UTC, autocommit (test setup only)."""
        return _root(self.primary_server, self.database)

    def replica(self) -> pymysql.Connection:
        """Root on the replica, in ``database``, UTC, autocommit (root may write despite
        ``read-only``: tests only read through it)."""
        return _root(self.replica_server, self.database)

    def reader_connection(self) -> pymysql.Connection:
        """The SELECT-only reader on the replica, over TCP as the sync connects."""
        return pymysql.connect(
            host="127.0.0.1",
            port=self.replica_server.port,
            user=self.reader,
            password=READER_PASSWORD,
            database=self.database,
            autocommit=True,
        )

    def reader_env(self) -> dict[str, str]:
        """The PARTYHELP_MYSQL_* settings of a sync reading the replica as the reader; pass
        them as overrides to ``sync_environment``/``faultkit.new_target``."""
        return {
            "PARTYHELP_MYSQL_HOST": "127.0.0.1",
            "PARTYHELP_MYSQL_PORT": str(self.replica_server.port),
            "PARTYHELP_MYSQL_USER": self.reader,
            "PARTYHELP_MYSQL_PASSWORD": READER_PASSWORD,
            "PARTYHELP_MYSQL_DATABASE": self.database,
            # The servers offer no TLS, like the shared one: the stack's default mode.
            "PARTYHELP_MYSQL_SSL_MODE": "preferred",
        }

    def replica_status(self) -> dict[str, Any]:
        """The replica's ``SHOW SLAVE STATUS`` row, by column name."""
        with (
            _root(self.replica_server, None) as connection,
            connection.cursor(pymysql.cursors.DictCursor) as cursor,
        ):
            cursor.execute("SHOW SLAVE STATUS")
            row = cursor.fetchone()
        if row is None:
            raise ReplicationError("the replica has no master configured")
        return dict(row)

    def stop_replication(self) -> None:
        """``STOP SLAVE`` on the replica: it keeps answering, with data that stops changing."""
        _execute(self.replica_server, "STOP SLAVE")

    def start_replication(self) -> None:
        """``START SLAVE`` on the replica: it fetches and applies what it missed."""
        _execute(self.replica_server, "START SLAVE")

    def wait_caught_up(self, timeout: float = CAUGHT_UP_SECONDS) -> None:
        """Wait until the replica has applied the primary's binary log up to its current
        end; ``ReplicationError`` if it does not within ``timeout`` seconds or is stopped."""
        with _root(self.primary_server, None) as connection, connection.cursor() as cursor:
            cursor.execute("SHOW MASTER STATUS")
            log_file, position = cursor.fetchone()[:2]
        with _root(self.replica_server, None) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT MASTER_POS_WAIT(%s, %s, %s)", (log_file, position, timeout))
            (waited,) = cursor.fetchone()
        # NULL: the SQL thread is not running; -1: the timeout passed.
        if waited is None or waited < 0:
            status = self.replica_status()
            raise ReplicationError(
                f"the replica did not reach {log_file}:{position} in {timeout:g}s "
                f"(Slave_IO_Running={status['Slave_IO_Running']}, "
                f"Slave_SQL_Running={status['Slave_SQL_Running']}, "
                f"Last_Error={status['Last_Error'] or status['Last_IO_Error']!r})"
            )

    def write_on_primary(
        self, count: int = 3, at: dt.datetime | None = None
    ) -> dict[str, list[int]]:
        """``count`` new purchases on the primary, as the app makes them: a lead, its
        purchase by an existing venue and the venue's ``purchase`` credit transaction (a
        ``topup`` before it when the balance is short), each created and updated ``at`` (UTC,
        naive; default the server's ``UTC_TIMESTAMP()``). Returns the new ids by table."""
        written: dict[str, list[int]] = {
            "leads": [],
            "lead_purchases": [],
            "credit_transactions": [],
        }
        with self.primary() as connection, connection.cursor() as cursor:
            for _ in range(count):
                for table, new_ids in _one_purchase(cursor, at).items():
                    written[table].extend(new_ids)
        return written


def _root(server: PrivateMariaDB, database: str | None) -> pymysql.Connection:
    connection = pymysql.connect(
        **server.admin, database=database, charset="utf8mb4", autocommit=True
    )
    with connection.cursor() as cursor:
        # TIMESTAMP columns are read and written in the session's zone: make it UTC.
        cursor.execute("SET SESSION time_zone = '+00:00'")
    return connection


def _execute(server: PrivateMariaDB, statement: str, params: Any = None) -> None:
    with _root(server, None) as connection, connection.cursor() as cursor:
        cursor.execute(statement, params)


def _one_purchase(cursor: Any, at: dt.datetime | None) -> dict[str, list[int]]:
    """Insert a lead, its purchase by a random venue and the venue's ``purchase`` credit
    transaction (after a ``topup`` if its balance is short, as the app does); their ids."""
    when = "UTC_TIMESTAMP()" if at is None else "%(at)s"
    cursor.execute("SELECT `key` FROM occasion_types ORDER BY RAND() LIMIT 1")
    (occasion,) = cursor.fetchone()
    values: dict[str, Any] = {"at": at, "occasion": occasion, "price": PRICE}
    values["venue"], values["balance"], ledger = _venue_that_can_pay(cursor, when, values)
    cursor.execute(
        "INSERT INTO leads (first_name, occasion_type, guest_count, status, base_price,"
        " current_price, purchase_count, distributed_at, expires_at, created_at, updated_at)"
        f" VALUES ('Replica', %(occasion)s, 30, 'partially_fulfilled', %(price)s, %(price)s, 1,"
        f" {when}, {when} + INTERVAL 14 DAY, {when}, {when})",
        values,
    )
    values["lead"] = cursor.lastrowid
    cursor.execute(
        "INSERT INTO lead_purchases (lead_id, venue_id, amount_paid, lead_status, created_at,"
        f" updated_at) VALUES (%(lead)s, %(venue)s, %(price)s, 'pending', {when}, {when})",
        values,
    )
    values["purchase"] = cursor.lastrowid
    cursor.execute(
        "INSERT INTO credit_transactions (venue_id, type, amount, balance_after,"
        " lead_purchase_id, description, created_at, updated_at) VALUES (%(venue)s,"
        " 'purchase', -%(price)s, %(balance)s - %(price)s, %(purchase)s,"
        f" CONCAT('Lead #', %(lead)s, ' purchased'), {when}, {when})",
        values,
    )
    return {
        "leads": [values["lead"]],
        "lead_purchases": [values["purchase"]],
        "credit_transactions": [*ledger, cursor.lastrowid],
    }


def _venue_that_can_pay(
    cursor: Any, when: str, values: dict[str, Any]
) -> tuple[int, Decimal, list[int]]:
    """(a random venue, its balance once it covers ``PRICE``, the id of the top-up that
    made it so, if one was needed)."""
    cursor.execute(
        "SELECT v.id, COALESCE((SELECT balance_after FROM credit_transactions c"
        " WHERE c.venue_id = v.id ORDER BY c.id DESC LIMIT 1), v.credit_balance)"
        " FROM venues v ORDER BY RAND() LIMIT 1"
    )
    venue_id, balance = cursor.fetchone()
    if balance >= PRICE:
        return int(venue_id), Decimal(balance), []
    topped = {**values, "venue": venue_id, "topup": TOP_UP, "balance": balance + TOP_UP}
    cursor.execute(
        "INSERT INTO credit_transactions (venue_id, type, amount, balance_after, description,"
        f" created_at, updated_at) VALUES (%(venue)s, 'topup', %(topup)s, %(balance)s,"
        f" 'Credit top-up', {when}, {when})",
        topped,
    )
    return int(venue_id), Decimal(topped["balance"]), [int(cursor.lastrowid)]


def _replicate(primary: PrivateMariaDB, replica: PrivateMariaDB) -> None:
    """Make ``replica`` follow ``primary`` from the primary's current binary log position."""
    password = "repl-" + secrets.token_hex(8)
    _execute(primary, f"CREATE USER '{REPLICATION_USER}'@'127.0.0.1' IDENTIFIED BY %s", (password,))
    _execute(primary, f"GRANT REPLICATION SLAVE ON *.* TO '{REPLICATION_USER}'@'127.0.0.1'")
    with _root(primary, None) as connection, connection.cursor() as cursor:
        cursor.execute("SHOW MASTER STATUS")
        log_file, position = cursor.fetchone()[:2]
    _execute(
        replica,
        "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = %s, MASTER_USER = %s,"
        " MASTER_PASSWORD = %s, MASTER_LOG_FILE = %s, MASTER_LOG_POS = %s,"
        " MASTER_CONNECT_RETRY = 1",
        (primary.port, REPLICATION_USER, password, log_file, position),
    )
    _execute(replica, "START SLAVE")


def _load_source(primary: PrivateMariaDB, scale: float, seed: int) -> None:
    """The schema, synthetic rows and the reader, on the primary (the replica copies them)."""
    from scripts import synthetic

    synthetic.load(primary.admin, DATABASE, scale=scale, seed=seed, create_schema=True)
    _execute(primary, f"CREATE USER '{READER}'@'%%' IDENTIFIED BY %s", (READER_PASSWORD,))
    _execute(primary, f"GRANT SELECT ON `{DATABASE}`.* TO '{READER}'@'%'")


@contextmanager
def replicated_source(scale: float = 0.02, seed: int = 21) -> Iterator[ReplicaPair]:
    """A primary and a replica, replicating, with the source database loaded on the primary
    and applied on the replica; both stopped and their files removed afterwards.

    No ``tmp_path``: each server makes a short temporary folder of its own, as a Unix socket
    path must stay under 108 bytes.
    """
    with ExitStack() as cleanup:
        primary = PrivateMariaDB([*COMMON_OPTIONS, *PRIMARY_OPTIONS], "partyhelp-primary-")
        cleanup.callback(primary.stop)
        replica = PrivateMariaDB([*COMMON_OPTIONS, *REPLICA_OPTIONS], "partyhelp-replica-")
        cleanup.callback(replica.stop)
        primary.start()
        replica.start()
        _replicate(primary, replica)
        _load_source(primary, scale, seed)
        pair = ReplicaPair(primary, replica)
        pair.wait_caught_up()
        yield pair


__all__ = ["DATABASE", "READER", "ReplicaPair", "ReplicationError", "replicated_source"]
