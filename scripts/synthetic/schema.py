"""The source schema: the DDL of the 8 tables (sql/mysql/partyhelp_schema.sql), and the
connection settings every session of the generator uses."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pymysql

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "sql" / "mysql" / "partyhelp_schema.sql"


def connect(conn_params: Mapping[str, Any], database: str | None) -> pymysql.Connection:
    """A utf8mb4, autocommit, UTC session that may use LOAD DATA LOCAL."""
    params = dict(conn_params)
    params.setdefault("charset", "utf8mb4")
    params["local_infile"] = True
    params["autocommit"] = True
    if database is not None:
        params["database"] = database
    conn = pymysql.connect(**params)
    with conn.cursor() as cur:
        # Timestamps are UTC text: do not let the server's zone shift them.
        cur.execute("SET SESSION time_zone = '+00:00'")
    return conn


def is_mariadb(conn: Any) -> bool:
    """Whether the server is MariaDB (its VERSION() says so) rather than MySQL: the two
    differ in the settings and JSON values the generator and the tests may use."""
    with conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        return "mariadb" in str(cur.fetchone()[0]).lower()


def create_database_schema(conn_params: Mapping[str, Any], database: str) -> None:
    """Create the database if missing and the 8 tables from SCHEMA_FILE."""
    conn = connect(conn_params, None)
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"CREATE DATABASE IF NOT EXISTS `{database}` "
                "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
            cur.execute(f"USE `{database}`")
            for stmt in schema_statements():
                cur.execute(stmt)
    finally:
        conn.close()


def schema_statements() -> list[str]:
    """Return the CREATE TABLE statements of SCHEMA_FILE, comments stripped."""
    text = SCHEMA_FILE.read_text(encoding="utf-8")
    statements = []
    for chunk in text.split(";\n"):
        body = "\n".join(ln for ln in chunk.splitlines() if not ln.lstrip().startswith("--"))
        if body.strip():
            statements.append(body.strip())
    return statements
