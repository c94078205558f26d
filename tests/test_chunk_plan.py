"""Chunk plans split tables by rows, deterministically, whatever gaps the ids have."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from partyhelp_pipeline.source import plan_chunks
from tests.conftest import admin_connection, create_source_database, drop_database


@pytest.fixture(scope="module")
def areas_db(stack: None) -> Iterator[str]:
    name = create_source_database("ph_plan")
    yield name
    drop_database(name)


def _plan(database: str, ids: list[int], chunk_rows: int) -> tuple[tuple[int, int], ...]:
    with admin_connection(database) as connection, connection.cursor() as cursor:
        cursor.execute("DELETE FROM areas")
        cursor.executemany("INSERT INTO areas (id, name) VALUES (%s, 'x')", [(i,) for i in ids])
        return plan_chunks(connection, "areas", chunk_rows)


def test_an_empty_table_has_one_empty_range(areas_db: str) -> None:
    assert _plan(areas_db, [], 4) == ((0, -1),)


def test_ranges_hold_rows_not_ids(areas_db: str) -> None:
    ids = [*range(1, 11), 900_000_001]  # legacy ids far above the rest make no empty chunks
    plan = _plan(areas_db, ids, 4)
    assert plan == ((1, 4), (5, 8), (9, 900_000_001))
    assert _plan(areas_db, ids, 4) == plan  # deterministic for the same data
    covered = [i for i in ids if any(first <= i <= last for first, last in plan)]
    assert covered == ids


def test_one_range_when_the_table_is_smaller_than_a_chunk(areas_db: str) -> None:
    assert _plan(areas_db, [3, 7, 20], 1000) == ((3, 20),)
