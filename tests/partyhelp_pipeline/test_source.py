"""Chunk plans split tables by primary-key span with one index probe per boundary: ranges
are contiguous (every id from the smallest to the largest is in exactly one), none is empty
whatever gaps the ids have, and planning never walks the table."""

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


def _fill(database: str, ids: list[int]) -> None:
    with admin_connection(database) as connection, connection.cursor() as cursor:
        cursor.execute("DELETE FROM areas")
        for start in range(0, len(ids), 10_000):
            # Placeholders only: PyMySQL then sends one multi-row INSERT (a literal in VALUES
            # makes it send, and commit, one INSERT per row: minutes for 100,000 rows).
            cursor.executemany(
                "INSERT INTO areas (id, name) VALUES (%s, %s)",
                [(i, "x") for i in ids[start : start + 10_000]],
            )


def _plan(database: str, ids: list[int], chunk_rows: int) -> tuple[tuple[int, int], ...]:
    _fill(database, ids)
    with admin_connection(database) as connection:
        return plan_chunks(connection, "areas", chunk_rows)


def _contiguous_and_none_empty(plan: tuple[tuple[int, int], ...], ids: list[int]) -> None:
    assert plan[0][0] == min(ids) and plan[-1][1] == max(ids)
    assert all(plan[i][1] + 1 == plan[i + 1][0] for i in range(len(plan) - 1))
    assert all(any(first <= i <= last for i in ids) for first, last in plan)


def test_an_empty_table_has_one_empty_range(areas_db: str) -> None:
    assert _plan(areas_db, [], 4) == ((0, -1),)


def test_gaps_make_no_empty_chunks_and_every_id_is_covered_once(areas_db: str) -> None:
    ids = [*range(1, 11), 900_000_001]  # legacy ids far above the rest make no empty chunks
    plan = _plan(areas_db, ids, 4)
    assert plan == ((1, 4), (5, 8), (9, 12), (13, 900_000_001))
    assert _plan(areas_db, ids, 4) == plan  # deterministic for the same data
    _contiguous_and_none_empty(plan, ids)
    covered = [i for i in ids if sum(first <= i <= last for first, last in plan) == 1]
    assert covered == ids


def test_sparse_ids_give_chunks_of_at_most_chunk_rows_rows(areas_db: str) -> None:
    ids = [*range(5, 200, 3), *range(1_000, 1_010), 5_000_000]
    plan = _plan(areas_db, ids, 10)
    _contiguous_and_none_empty(plan, ids)
    rows = [sum(first <= i <= last for i in ids) for first, last in plan]
    assert max(rows) <= 10 and sum(rows) == len(ids)


def test_a_row_inserted_into_a_gap_after_planning_falls_in_one_chunk(areas_db: str) -> None:
    ids = [1, 2, 3, 50, 51, 10_000]
    plan = _plan(areas_db, ids, 2)
    for late in (4, 49, 9_999):  # live inserts with explicit ids, below the planned maximum
        assert sum(first <= late <= last for first, last in plan) == 1


def test_one_range_when_the_table_is_smaller_than_a_chunk(areas_db: str) -> None:
    assert _plan(areas_db, [3, 7, 20], 1000) == ((3, 20),)


def test_planning_probes_the_index_instead_of_walking_it(areas_db: str) -> None:
    """MariaDB's handler counters: planning 100,000 rows into 10 chunks reads a few dozen
    index entries (the walk it replaces read every one)."""
    _fill(areas_db, list(range(1, 100_001)))
    with admin_connection(areas_db) as connection, connection.cursor() as cursor:

        def entries_read() -> int:
            cursor.execute(
                "SHOW SESSION STATUS WHERE Variable_name IN "
                "('Handler_read_next', 'Handler_read_key', 'Handler_read_first', "
                "'Handler_read_last', 'Handler_read_rnd_next')"
            )
            return sum(int(value) for _name, value in cursor.fetchall())

        before = entries_read()
        plan = plan_chunks(connection, "areas", 10_000)
        read = entries_read() - before
    assert len(plan) == 10 and plan[-1] == (90_001, 100_000)
    assert read < 100, read
