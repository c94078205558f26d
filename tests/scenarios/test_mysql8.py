"""What MySQL 8 would do to the source side, shown on MariaDB (no MySQL server can be
installed on these machines: README "Supported servers").

- The sync reads in MySQL 8's default ``sql_mode`` as a reader whose SELECT comes from a
  role (``CREATE ROLE``, ``GRANT SELECT ON db.* TO role``, ``SET DEFAULT ROLE``), and every
  table equals the source cell by cell (``tests/oracle.py``), with every money sum.
- ``check`` passes such a reader, and sees a write privilege in any of its roles, an
  inactive one included.
- ``check`` reads the ``REVOKE`` lines that MySQL 8 prints with ``partial_revokes``: a pure
  test of the parser on the text of the MySQL manual, since MariaDB has no partial revokes.

How the reading session gets MySQL 8's ``sql_mode`` without touching the server's GLOBAL
one (other test workers share the server): the test wraps the driver's ``connect`` so that
each connection opened as the role reader passes ``init_command`` (a connect option both
PyMySQL and mysqlclient document, run by the driver right after it logs in). The rest is the
real path: ``source.connect`` and ``source.snapshot`` of the flow's own tasks, on the real
server. The test checks inside a real snapshot that the mode is the one asked for.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from partyhelp_pipeline import preflight
from partyhelp_pipeline.settings import load_settings
from partyhelp_pipeline.source import snapshot
from partyhelp_pipeline.spec import TABLES
from tests.conftest import READER_PASSWORD, admin_connection
from tests.faultkit import (
    Source,
    assert_table_equals_source,
    assert_totals_equal_source,
    environment,
    new_target,
    source_database,
    sync_on,
)

pytestmark = pytest.mark.usefixtures("stack", "emulators")  # emulators: conftest.py

# MySQL 8.0's and 8.4's default sql_mode (MySQL manual, "Server SQL Modes").
MYSQL8_SQL_MODE = (
    "ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,"
    "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"
)
HOSTS = ("localhost", "127.0.0.1", "%")
SYNC_DAY = dt.date(2026, 11, 25)


def _admin(*statements: str) -> None:
    with admin_connection() as connection, connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


@pytest.fixture(scope="module")
def role_source() -> Iterator[tuple[Source, str]]:
    """A source with every legacy edge case, read by a user whose only privilege is a
    default role with SELECT on the database: (source with that user, the role)."""
    token = secrets.token_hex(4)
    user, role = f"m8_{token}", f"m8_reader_{token}"
    with source_database("ph_mysql8", scale=0.05, seed=23) as source:
        _admin(f"CREATE ROLE `{role}`", f"GRANT SELECT ON `{source.database}`.* TO `{role}`")
        try:
            with admin_connection() as connection, connection.cursor() as cursor:
                for host in HOSTS:
                    cursor.execute(
                        "CREATE USER %s@%s IDENTIFIED BY %s", (user, host, READER_PASSWORD)
                    )
                    cursor.execute(f"GRANT `{role}` TO %s@%s", (user, host))
                    cursor.execute(f"SET DEFAULT ROLE `{role}` FOR %s@%s", (user, host))
            yield Source(source.database, user), role
        finally:
            with admin_connection() as connection, connection.cursor() as cursor:
                for host in HOSTS:
                    cursor.execute("DROP USER IF EXISTS %s@%s", (user, host))
            _admin(f"DROP ROLE IF EXISTS `{role}`")


def _with_init_command(
    connect: Callable[..., Any], user: str, opened: list[str]
) -> Callable[..., Any]:
    def connect_in_mysql8_mode(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("user") == user:
            kwargs["init_command"] = f"SET SESSION sql_mode = '{MYSQL8_SQL_MODE}'"
            opened.append(user)
        return connect(*args, **kwargs)

    return connect_in_mysql8_mode


@pytest.fixture()
def mysql8_mode(role_source: tuple[Source, str], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every connection the role reader opens, in either driver, starts in MySQL 8's
    default sql_mode; returns the list of those connections (one entry each)."""
    import pymysql

    opened: list[str] = []
    user = role_source[0].user
    monkeypatch.setattr(pymysql, "connect", _with_init_command(pymysql.connect, user, opened))
    try:
        import MySQLdb
    except ImportError:  # the C driver is an optional extra
        return opened
    monkeypatch.setattr(MySQLdb, "connect", _with_init_command(MySQLdb.connect, user, opened))
    return opened


def test_a_role_reader_in_mysql8_sql_mode_syncs_every_table_exactly(
    role_source: tuple[Source, str], mysql8_mode: list[str]
) -> None:
    source, _ = role_source
    env = new_target(source, "mysql8")
    with environment(env) as settings:
        with snapshot(settings.mysql) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT @@SESSION.sql_mode, CURRENT_ROLE()")
            mode, active = cursor.fetchone()
        assert (mode, active) == (MYSQL8_SQL_MODE, role_source[1])
        state = sync_on(SYNC_DAY)
        assert state.is_completed(), state.message
        assert len(mysql8_mode) > 2  # the flow's own connections took the mode too
        for table in TABLES:
            assert_table_equals_source(settings, source, table, SYNC_DAY)
            assert_totals_equal_source(settings, source, table)


def _check(source: Source) -> preflight.CheckResult:
    settings = load_settings(new_target(source, "m8check"))
    result, connected = preflight.check_mysql(settings)
    assert connected
    return result


def test_check_passes_a_reader_whose_select_comes_from_its_default_role(
    role_source: tuple[Source, str], mysql8_mode: list[str]
) -> None:
    source, _ = role_source
    result = _check(source)
    assert result.ok, result.detail
    assert result.detail.endswith(f"SELECT only on `{source.database}`")


@pytest.mark.parametrize("active", [True, False], ids=["default-role", "inactive-role"])
def test_check_sees_a_write_privilege_granted_through_a_role(
    role_source: tuple[Source, str], active: bool
) -> None:
    """A role that may write fails ``check``, whether it is active at login or only
    granted (the user could ``SET ROLE`` to it)."""
    source, reader_role = role_source
    writer = f"m8_writer_{secrets.token_hex(4)}"
    role = reader_role if active else writer
    _admin(f"CREATE ROLE `{writer}`")
    try:
        _admin(f"GRANT INSERT, UPDATE ON `{source.database}`.`leads` TO `{role}`")
        if not active:
            for host in HOSTS:
                _admin(f"GRANT `{writer}` TO '{source.user}'@'{host}'")
        result = _check(source)
        assert not result.ok
        assert f"which could write: INSERT, UPDATE on `{source.database}`.`leads`" in result.detail
    finally:
        _admin(f"DROP ROLE IF EXISTS `{writer}`")
        if active:
            _admin(f"REVOKE INSERT, UPDATE ON `{source.database}`.`leads` FROM `{role}`")


def _check_result(source: Source) -> preflight.CheckResult:
    return preflight.check_mysql(load_settings(new_target(source, "m8check")))[0]


def test_check_fails_a_reader_whose_role_is_not_active(role_source: tuple[Source, str]) -> None:
    """SELECT only in a role that login does not activate: the sync could not read. With
    no privilege at all in the database the server refuses the login; with SELECT on one
    table of its own, the user logs in and ``check`` names the tables it cannot read."""
    source, role = role_source
    try:
        for host in HOSTS:
            _admin(f"SET DEFAULT ROLE NONE FOR '{source.user}'@'{host}'")
        refused = _check_result(source)
        assert not refused.ok
        assert f"to database '{source.database}'" in refused.detail
        for host in HOSTS:
            _admin(f"GRANT SELECT ON `{source.database}`.`leads` TO '{source.user}'@'{host}'")
        result = _check(source)
        assert not result.ok
        assert (
            f"which cannot read `{source.database}`: no SELECT on `{source.database}`.* "
            "nor on areas, credit_transactions, lead_matches, lead_purchases, "
            "occasion_types, venues" in result.detail
        )
    finally:
        for host in HOSTS:
            _admin(
                f"REVOKE ALL PRIVILEGES ON `{source.database}`.`leads` "
                f"FROM '{source.user}'@'{host}'"
            )
            _admin(f"SET DEFAULT ROLE `{role}` FOR '{source.user}'@'{host}'")


# ------------------------------------------------------------------ MySQL 8's own text
# MariaDB prints neither of these (it has no partial_revokes and no SHOW GRANTS ... USING),
# so the parser is tested on the lines the MySQL 8.0/8.4 manual shows ("Privilege
# Restriction Using Partial Revokes", "SHOW GRANTS Statement").

TABLE_NAMES = frozenset({"leads", "venues"})


def test_a_partial_revoke_of_select_means_no_read() -> None:
    lines = ["GRANT SELECT ON *.* TO `u1`@`%`", "REVOKE SELECT ON `ph_db`.* FROM `u1`@`%`"]
    assert (
        preflight.read_problem(lines, "ph_db", TABLE_NAMES)
        == "SELECT on `ph_db`.* is revoked (partial_revokes)"
    )
    assert preflight.read_problem(lines, "other_db", TABLE_NAMES) is None
    # a revoke from another database leaves this one readable
    assert (
        preflight.read_problem(
            [lines[0], "REVOKE SELECT ON `mysql`.* FROM `u1`@`%`"], "ph_db", TABLE_NAMES
        )
        is None
    )


def test_a_global_write_revoked_only_on_the_source_still_counts() -> None:
    """The manual's example: SELECT and INSERT everywhere but INSERT on one schema."""
    lines = ["GRANT SELECT, INSERT ON *.* TO `u1`@`%`", "REVOKE INSERT ON `world`.* FROM `u1`@`%`"]
    assert preflight.write_privileges(lines, "world") == ["INSERT on *.* (revoked on `world` only)"]
    assert preflight.write_privileges(lines, "ph_db") == ["INSERT on *.*"]
    assert preflight.read_problem(lines, "world", TABLE_NAMES) is None


def test_roles_granted_on_mysql8_are_read_from_their_grant_lines() -> None:
    lines = [
        "GRANT USAGE ON *.* TO `u1`@`localhost`",
        "GRANT `app_read`@`%`,`audit``s`@`%` TO `u1`@`localhost` WITH ADMIN OPTION",
        "GRANT `nested` TO `app_read`",
    ]  # MariaDB: a role granted to a role
    assert preflight.granted_roles(lines) == ["`app_read`@`%`", "`audit``s`@`%`"]
    # after SHOW GRANTS FOR CURRENT_USER() USING `app_read`@`%`: the role's privileges
    # appear as the user's own lines, which the rules read as any other
    using = [
        "GRANT USAGE ON *.* TO `u1`@`localhost`",
        "GRANT SELECT ON `ph_db`.* TO `u1`@`localhost`",
        "GRANT `app_read`@`%` TO `u1`@`localhost`",
    ]
    assert preflight.read_problem(using, "ph_db", TABLE_NAMES) is None
    assert preflight.write_privileges(using, "ph_db") == []


def test_the_edge_rows_load_where_json_is_validated(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """The generator's MySQL path: no ``check_constraint_checks`` (MySQL has none) and
    no malformed JSON. Run on MariaDB taken for MySQL, whose JSON CHECK (json_valid) then
    stays on and refuses malformed JSON as a MySQL JSON column does."""
    from scripts.synthetic import loader
    from scripts.synthetic.common import COLUMNS
    from scripts.synthetic.edge_cases import edge_case_rows, mysql_edge_case_rows
    from tests.conftest import MYSQL_ADMIN, create_source_database, drop_database

    database = create_source_database("ph_m8_edge")
    try:
        monkeypatch.setattr(loader, "is_mariadb", lambda _conn: False)
        with loader.connect(MYSQL_ADMIN, database) as connection:
            loaded = loader._load_edge_rows(connection, "insert", str(tmp_path))
        assert loaded == {t: len(rows) for t, rows in edge_case_rows().items()}
        with admin_connection(database) as connection, connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, suburb_preferences, location_selections FROM leads "
                "WHERE id IN (900000005, 900000006) ORDER BY id"
            )
            assert cursor.fetchall() == ((900000005, None, None), (900000006, None, None))
    finally:
        drop_database(database)
    kept = mysql_edge_case_rows()["leads"]
    at = COLUMNS["leads"].index("suburb_preferences")
    assert [row[at] for row in kept][:4] == [row[at] for row in edge_case_rows()["leads"]][:4]
