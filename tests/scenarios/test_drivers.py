"""mysqlclient and PyMySQL export the same Avro values, and ``PARTYHELP_MYSQL_DRIVER``
(default ``auto``) chooses between them, the log naming the one chosen.

The same chunks of every table are exported once with each driver (the real
``partyhelp_pipeline.export.export_chunk``, parts kept in a local folder through its
``store`` seam), both sets of files are read back with fastavro, and every record is compared.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path
from typing import Any

import fastavro
import pytest

from partyhelp_pipeline import export, source
from partyhelp_pipeline import manifest as mf
from partyhelp_pipeline.export_target import ExportTarget
from partyhelp_pipeline.settings import ConfigError, load_settings
from partyhelp_pipeline.spec import TABLES
from tests.conftest import admin_connection, sync_environment

SYNC_DATE = dt.date(2026, 11, 25)


class FolderStore:
    """Keeps each part as a file under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, name: str, path: str, rows: int, chunk: int) -> mf.PartInfo:
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        size, crc = os.path.getsize(path), mf.file_crc32c_base64(path)
        os.replace(path, target)
        return mf.PartInfo(str(target), rows, size, crc, chunk)


def _export(
    source_db: dict[str, Any], table: str, driver: str, root: Path, **overrides: str
) -> tuple[list[dict[str, Any]], list[export.ChunkResult], Any]:
    with admin_connection(source_db["database"]) as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM `{TABLES[table].source_table}`")
        count = cursor.fetchone()[0]
    env = sync_environment(
        source_db["database"],
        source_db["user"],
        "ph-drivers",
        "ph_drivers",
        PARTYHELP_MYSQL_DRIVER=driver,
        # three chunks, each of several batches
        PARTYHELP_CHUNK_ROWS=str(-(-count // 3)),
        PARTYHELP_BATCH_ROWS="16",
        **overrides,
    )
    target = ExportTarget.from_settings(load_settings(env))
    assert target.source.driver == driver
    spec = TABLES[table]
    plan = export.plan_export(target, spec, SYNC_DATE, "test-drivers")
    store = FolderStore(root / driver)
    chunks = [
        export.export_chunk(target, spec, plan, i, store=store) for i in range(len(plan.chunks))
    ]
    records: list[dict[str, Any]] = []
    schema = None
    for part in (p for c in chunks for p in c.parts):
        with open(part.uri, "rb") as f:
            reader = fastavro.reader(f)
            schema = reader.writer_schema
            records.extend(reader)
    return records, chunks, schema


@pytest.mark.parametrize(("table", "pii"), [(t, False) for t in TABLES] + [("ph_leads", True)])
def test_pymysql_and_mysqlclient_write_the_same_avro_values(
    source_db: dict[str, Any], tmp_path: Path, table: str, pii: bool
) -> None:
    extra = {"PARTYHELP_INCLUDE_PII_HASHES": "true", "PARTYHELP_PII_SALT": "s3cret"} if pii else {}
    fast, fast_chunks, fast_schema = _export(source_db, table, "mysqlclient", tmp_path, **extra)
    pure, pure_chunks, pure_schema = _export(source_db, table, "pymysql", tmp_path, **extra)

    assert [c.driver for c in fast_chunks] == ["mysqlclient"] * len(fast_chunks)
    assert [c.driver for c in pure_chunks] == ["pymysql"] * len(pure_chunks)
    assert len(fast_chunks) > 1  # the comparison covers several chunks and batches
    assert fast_schema == pure_schema
    key = TABLES[table].primary_key
    assert [r[key] for r in fast] == sorted(r[key] for r in fast)
    assert len(fast) == len(pure) == sum(c.rows for c in fast_chunks) > 0
    for fast_record, pure_record in zip(fast, pure, strict=True):
        assert fast_record == pure_record, f"{table} row {fast_record[key]} differs"
    assert [c.source_totals for c in fast_chunks] == [c.source_totals for c in pure_chunks]
    assert [c.exported_totals for c in fast_chunks] == [c.exported_totals for c in pure_chunks]
    assert [c.quality for c in fast_chunks] == [c.quality for c in pure_chunks]
    if pii:
        assert any(r["email_sha256"] for r in fast)


# ------------------------------------------------------------------ choosing the driver
# Here both drivers are installed (requirements-dev.lock holds [fast]); a machine without
# mysqlclient, where `auto` falls back to PyMySQL and a named mysqlclient fails naming the
# extra, is tests/scenarios/test_packaging.py's fresh venv.


@pytest.mark.parametrize(
    ("choice", "driver", "logged"),
    [
        (None, "mysqlclient", "MySQL driver: mysqlclient (C)"),  # unset: auto
        ("auto", "mysqlclient", "MySQL driver: mysqlclient (C)"),
        ("mysqlclient", "mysqlclient", "MySQL driver: mysqlclient (C)"),
        ("pymysql", "pymysql", "MySQL driver: PyMySQL (pure Python)"),
    ],
)
def test_the_driver_is_chosen_and_named_once_in_the_log(
    source_db: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    choice: str | None,
    driver: str,
    logged: str,
) -> None:
    env = sync_environment(
        source_db["database"],
        source_db["user"],
        "ph-drivers",
        "ph_drivers",
        **({"PARTYHELP_MYSQL_DRIVER": choice} if choice else {}),
    )
    settings = load_settings(env)
    assert settings.mysql_driver == (choice or "auto")
    assert settings.mysql.driver == driver
    monkeypatch.setattr(source, "_announced", set())  # this process named one already
    caplog.set_level(logging.INFO, logger="partyhelp_sync")
    for _ in range(2):  # a second connection of the same run says nothing more
        with source.snapshot(settings.mysql) as connection:
            module = type(connection).__module__
            assert source.fetch_one(connection, "SELECT 1 AS one", {}) == {"one": 1}
    assert module.split(".")[0] == {"mysqlclient": "MySQLdb", "pymysql": "pymysql"}[driver]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("MySQL driver")]
    assert lines == [logged]  # mysqlclient is installed: no hint to install it


def test_a_driver_the_settings_do_not_know_is_refused_naming_the_choices() -> None:
    env = sync_environment(
        "ph_nothing", "nobody", "ph-drivers", "ph_drivers", PARTYHELP_MYSQL_DRIVER="mysql-connector"
    )
    with pytest.raises(ConfigError) as refused:
        load_settings(env)
    assert str(refused.value) == (
        "PARTYHELP_MYSQL_DRIVER='mysql-connector' must be one of auto, mysqlclient, pymysql"
    )
