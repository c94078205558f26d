"""Lookup joins in Arrow (``partyhelp_pipeline/lookups.py``): the same values as the LEFT
JOIN in SQL, read in the chunk's snapshot.

The join itself is checked on hand-made lookups; the export with its lookups joined in
Arrow is compared byte for byte with the export of the same chunks with every join made
by MariaDB, on the shared source with its legacy edge cases (orphans, venues without an
area); and a venue renamed after a chunk's snapshot began is exported with its old name.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro
import pyarrow as pa
import pytest

from partyhelp_pipeline import avro_encoding, export, lookups
from partyhelp_pipeline.batches import BatchContext
from partyhelp_pipeline.errors import BadDataError
from partyhelp_pipeline.export_target import ExportTarget
from partyhelp_pipeline.settings import load_settings
from partyhelp_pipeline.spec import TABLES, TableSpec
from tests.conftest import (
    admin_connection,
    create_reader,
    create_source_database,
    drop_database,
    drop_reader,
    sync_environment,
)
from tests.scenarios.test_drivers import FolderStore

SYNC_DATE = dt.date(2026, 11, 25)
PURCHASES = TABLES["ph_lead_purchases"]
VENUES = PURCHASES.lookups[0]


def _table(keys: list[int | None], names: list[str | None]) -> lookups.LookupTable:
    """A venues lookup of these rows, sorted as ``read_lookup`` sorts them."""
    context = BatchContext(PURCHASES, PURCHASES.output_columns(), SYNC_DATE)
    whole = {
        "lookup_key": pa.array(keys, pa.int64()),
        "venue_business_name": pa.array(names, pa.string()),
        "venue_area_name": pa.array([f"area of {n}" if n else None for n in names], pa.string()),
    }
    return lookups._sorted(context, VENUES, whole)


def test_each_row_takes_its_keys_values_and_null_where_none_matches() -> None:
    table = _table([30, 10, None, 20], ["Thirty", "Ten", "no key", None])
    columns = {"venue_id": pa.array([10, 99, None, 30, 20, 10, -5], pa.int64())}
    table.join(columns)
    assert columns["venue_business_name"].to_pylist() == [
        "Ten",
        None,  # no venue 99: an orphan, as the LEFT JOIN leaves it
        None,  # NULL venue_id never matches
        "Thirty",
        None,  # venue 20 exists, its name is NULL
        "Ten",
        None,
    ]
    assert columns["venue_area_name"].to_pylist()[:4] == [
        "area of Ten",
        None,
        None,
        "area of Thirty",
    ]
    assert list(table.keys) == [10, 20, 30]  # the row without a key is no key


def test_an_empty_lookup_leaves_every_row_null() -> None:
    columns = {"venue_id": pa.array([1, None, 3], pa.int64())}
    _table([], []).join(columns)
    assert columns["venue_business_name"].to_pylist() == [None, None, None]
    assert columns["venue_business_name"].type == pa.string()


def test_a_key_held_twice_fails_naming_the_table_and_the_key() -> None:
    with pytest.raises(BadDataError) as failed:
        _table([7, 3, 7], ["a", "b", "c"])
    assert str(failed.value) == (
        "ph_lead_purchases: lookup venues holds id 7 more than once; a lookup's key must be unique"
    )


def test_a_lookup_needs_its_parent_as_an_int64_query_column() -> None:
    without_venue_id = tuple(c for c in PURCHASES.columns if c.name != "venue_id")
    with pytest.raises(ValueError, match=r"lookup venues needs lp\.venue_id as an INT64"):
        dataclasses.replace(PURCHASES, columns=without_venue_id, cluster_by=("occasion_type",))


def every_join_in_sql(spec: TableSpec) -> TableSpec:
    """The same table with every join made by the server (no lookup)."""
    return dataclasses.replace(
        spec, joins=tuple(dataclasses.replace(j, lookup=False) for j in spec.joins)
    )


def _export_parts(
    database: str, user: str, spec: TableSpec, root: Path, chunk_rows: str = "150"
) -> tuple[list[str], list[export.ChunkResult]]:
    """The chunks of ``spec`` exported into ``root``: each part's SHA-256, and the chunks."""
    env = sync_environment(
        database,
        user,
        "ph-lookups",
        "ph_lookups",
        PARTYHELP_CHUNK_ROWS=chunk_rows,
        PARTYHELP_BATCH_ROWS="40",
    )
    target = ExportTarget.from_settings(load_settings(env))
    plan = export.plan_export(target, spec, SYNC_DATE, "test-lookups")
    store = FolderStore(root)
    chunks = [
        export.export_chunk(target, spec, plan, i, store=store) for i in range(len(plan.chunks))
    ]
    digests = [
        hashlib.sha256(Path(p.uri).read_bytes()).hexdigest() for c in chunks for p in c.parts
    ]
    return digests, chunks


@pytest.mark.parametrize("table", [name for name, spec in TABLES.items() if spec.lookups])
def test_lookups_joined_in_arrow_write_the_bytes_of_the_join_in_sql(
    source_db: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: str
) -> None:
    # The one fake: a fixed Avro sync marker (random per file otherwise), so that the two
    # exports' files can be compared byte for byte.
    monkeypatch.setattr(avro_encoding.os, "urandom", lambda size: b"\x5a" * size)
    spec = TABLES[table]
    arrow, arrow_chunks = _export_parts(
        source_db["database"], source_db["user"], spec, tmp_path / "arrow"
    )
    sql, sql_chunks = _export_parts(
        source_db["database"], source_db["user"], every_join_in_sql(spec), tmp_path / "sql"
    )
    assert len(arrow_chunks) > 1 and sum(c.rows for c in arrow_chunks) > 10
    assert arrow == sql
    assert [c.quality for c in arrow_chunks] == [c.quality for c in sql_chunks]
    orphans = [n for c in arrow_chunks for k, n in c.quality["counts"].items() if "orphan" in k]
    assert sum(orphans) > 0  # the edge cases hold rows whose venue or area is gone


@pytest.fixture()
def private_source() -> Iterator[dict[str, str]]:
    """A small source of this test's own: it writes to it."""
    from scripts import synthetic
    from tests.conftest import MYSQL_ADMIN

    database = create_source_database("ph_lookups")
    synthetic.load(MYSQL_ADMIN, database, scale=0.02, seed=11, edge_cases=False)
    user = create_reader(database)
    yield {"database": database, "user": user}
    drop_reader(user)
    drop_database(database)


def test_a_venue_renamed_after_the_snapshot_began_is_exported_as_it_was(
    private_source: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rename is a real committed write by another connection, made after the chunk's
    snapshot began and before its lookups are read (the wrapper only chooses the moment)."""
    database = private_source["database"]
    with admin_connection(database) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT v.id, v.business_name FROM venues v JOIN lead_purchases lp "
            "ON lp.venue_id = v.id ORDER BY lp.id LIMIT 1"
        )
        venue_id, name = cursor.fetchone()
    read_lookups = lookups.read_lookups

    def rename_then_read(*args: Any) -> Any:
        with admin_connection(database) as connection, connection.cursor() as cursor:
            cursor.execute(
                "UPDATE venues SET business_name = 'Renamed Since' WHERE id = %s", (venue_id,)
            )
        return read_lookups(*args)

    monkeypatch.setattr(export, "read_lookups", rename_then_read)
    _, chunks = _export_parts(database, private_source["user"], PURCHASES, tmp_path, "10000000")
    assert len(chunks) == 1  # one snapshot
    names = set()
    for part in chunks[0].parts:
        with open(part.uri, "rb") as f:
            records = fastavro.reader(f)
            names |= {r["venue_business_name"] for r in records if r["venue_id"] == venue_id}
    assert names == {name}
    with admin_connection(database) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT business_name FROM venues WHERE id = %s", (venue_id,))
        assert cursor.fetchone() == ("Renamed Since",)


def test_a_venue_id_above_int64_leaves_the_tables_that_look_venues_up_unchanged(
    private_source: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BIGINT UNSIGNED allows ids above int64. No purchase can point at such a venue and
    still be exported (its venue_id fails, naming the row), so the lookup leaves it out:
    the purchases export as the join in SQL exports them."""
    monkeypatch.setattr(avro_encoding.os, "urandom", lambda size: b"\x5a" * size)
    database = private_source["database"]
    with admin_connection(database) as connection, connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE one_venue AS SELECT * FROM venues LIMIT 1")
        cursor.execute("UPDATE one_venue SET id = 18446744073709551615")
        cursor.execute("INSERT INTO venues SELECT * FROM one_venue")
        cursor.execute("SELECT COUNT(*) FROM lead_purchases")
        (purchases,) = cursor.fetchone()
    user = private_source["user"]
    arrow, chunks = _export_parts(database, user, PURCHASES, tmp_path / "arrow")
    sql, _ = _export_parts(database, user, every_join_in_sql(PURCHASES), tmp_path / "sql")
    assert sum(c.rows for c in chunks) == purchases > 0
    assert arrow == sql
