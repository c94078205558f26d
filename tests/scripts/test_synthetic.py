"""Tests of scripts/synthetic/: the pure generator and loads into a throwaway MariaDB database.

Needs the local MariaDB at 127.0.0.1:3306 (root, empty password); skipped if unreachable.
Each database is named ph_syn_<random hex> and dropped at the end of the module.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pymysql
import pytest

from scripts import synthetic as syn

PARAMS = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
SEED = 42
TINY = 0.01
SMALL = 0.05
E = syn.EDGE_ID_BASE
REPO = Path(__file__).resolve().parents[2]


def _connect(database: str | None = None) -> pymysql.Connection:
    conn = pymysql.connect(**PARAMS, database=database, autocommit=True, charset="utf8mb4")
    with conn.cursor() as cur:
        cur.execute("SET SESSION time_zone = '+00:00'")
    return conn


@pytest.fixture(scope="module")
def server() -> Iterator[pymysql.Connection]:
    try:
        conn = _connect()
    except pymysql.MySQLError as exc:
        pytest.skip(f"MariaDB at 127.0.0.1:3306 is not reachable: {exc}")
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def new_db(server: pymysql.Connection) -> Iterator[Callable[[], str]]:
    """Factory of fresh database names; every database made here is dropped at the end."""
    made: list[str] = []

    def make() -> str:
        name = f"ph_syn_{secrets.token_hex(6)}"
        made.append(name)
        return name

    yield make
    while _CONNS:
        _CONNS.popitem()[1].close()
    with server.cursor() as cur:
        for name in made:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(scope="module")
def tiny_dbs(new_db: Callable[[], str]) -> tuple[str, str]:
    """Two databases loaded with the same scale 0.01 dataset and seed."""
    names = (new_db(), new_db())
    for name in names:
        syn.load(PARAMS, name, TINY, SEED, create_schema=True)
    return names


@pytest.fixture(scope="module")
def edge_db(new_db: Callable[[], str]) -> str:
    """A database loaded with scale 0.05 plus the edge-case rows, through LOAD DATA."""
    name = new_db()
    syn.load(PARAMS, name, SMALL, SEED, edge_cases=True, create_schema=True, method="infile")
    return name


def _db_checksums(database: str) -> dict[str, tuple[int, int]]:
    conn = _connect(database)
    try:
        out = {}
        with conn.cursor() as cur:
            for table in syn.TABLES:
                cur.execute(syn.checksum_sql(table))
                n, total = cur.fetchone()
                out[table] = (int(n), int(total))
        return out
    finally:
        conn.close()


_CONNS: dict[str, pymysql.Connection] = {}


def _scalar(database: str, sql: str) -> object:
    # One connection per database for the whole module: connecting costs more than most
    # of these queries. The new_db fixture closes them before dropping the databases.
    if database not in _CONNS:
        _CONNS[database] = _connect(database)
    with _CONNS[database].cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


# ---------------------------------------------------------------------------------------
# Pure generator
# ---------------------------------------------------------------------------------------


def test_generation_is_deterministic_and_depends_on_the_seed() -> None:
    first = syn.table_checksums(TINY, SEED)
    assert syn.table_checksums(TINY, SEED) == first
    assert syn.table_checksums(TINY, SEED + 1) != first


def test_tiny_scale_has_a_few_rows_in_every_table() -> None:
    counts = syn.count_rows(TINY, SEED)
    for table, n in counts.items():
        assert 3 <= n <= 100, (table, n)
    assert counts["venues"] == syn.MIN_VENUES
    assert counts["leads"] == syn.MIN_LEADS


def test_scale_drives_the_counts() -> None:
    assert syn.planned_sizes(1.0)["venues"] == 40
    assert syn.planned_sizes(1.0)["leads"] == 800
    assert syn.planned_sizes(1000)["leads"] == 800_000
    counts = syn.count_rows(1.0, SEED)
    assert 5_000 < counts["lead_matches"] < 7_000
    assert 1_400 < counts["lead_purchases"] < 2_600
    assert counts["credit_transactions"] > counts["lead_purchases"]
    with pytest.raises(ValueError):
        syn.planned_sizes(0)


def test_chunking_does_not_change_the_rows() -> None:
    whole = [syn.generate(0.2, SEED, chunk_rows=10**9)]
    chunked = [syn.generate(0.2, SEED, chunk_rows=200)]
    flat = []
    for gen in (whole[0], chunked[0]):
        rows: dict[str, list[syn.Row]] = defaultdict(list)
        n_chunks = 0
        for chunk in gen:
            n_chunks += 1
            for table, part in chunk.items():
                rows[table].extend(part)
        flat.append((rows, n_chunks))
    assert flat[0][0] == flat[1][0]
    assert flat[0][1] == 1 < flat[1][1]


def test_business_invariants_hold_in_the_generated_rows() -> None:
    data: dict[str, list[dict]] = defaultdict(list)
    for chunk in syn.generate(0.5, SEED):
        for table, rows in chunk.items():
            data[table].extend(syn.to_python(table, r) for r in rows)
    leads = {r["id"]: r for r in data["leads"]}
    purchases = data["lead_purchases"]
    # Purchases pay the lead's price at purchase time; counts agree with the leads.
    per_lead = Counter(p["lead_id"] for p in purchases)
    for p in purchases:
        lead = leads[p["lead_id"]]
        expected = (lead["base_price"] * (100 - p["discount_percent"]) / 100).quantize(
            Decimal("0.01")
        )
        assert p["amount_paid"] == expected
        assert p["discount_percent"] in (0, 10, 20, 30)
        assert lead["distributed_at"] < p["created_at"] <= syn.DATASET_NOW
    for lead in leads.values():
        assert lead["purchase_count"] == per_lead[lead["id"]] <= lead["purchase_target"]
        assert lead["current_price"] == (
            lead["base_price"] * (100 - lead["discount_percent"]) / 100
        ).quantize(Decimal("0.01"))
        if lead["status"] == "fulfilled":
            assert lead["purchase_count"] == lead["purchase_target"]
    # Purchased matches are exactly the purchases.
    bought = {(p["lead_id"], p["venue_id"]): p["created_at"] for p in purchases}
    matched = {
        (m["lead_id"], m["venue_id"]): m["purchased_at"]
        for m in data["lead_matches"]
        if m["status"] == "purchased"
    }
    assert matched == bought
    # Ids follow time in the event tables (as AUTO_INCREMENT would).
    for table in ("leads", "lead_matches", "lead_purchases", "credit_transactions"):
        times = [r["created_at"] for r in data[table]]
        assert times == sorted(times), table
        assert [r["id"] for r in data[table]] == list(range(1, len(times) + 1)), table
    # Realistic mix: several statuses, occasions and areas actually occur.
    assert len({r["status"] for r in leads.values()}) >= 4
    assert len({r["occasion_type"] for r in leads.values()}) >= 10
    assert {r["type"] for r in data["credit_transactions"]} >= {"topup", "purchase"}
    assert all(r["state"] in ("VIC", "NSW", "QLD") for r in data["venues"])


def test_tsv_escaping_of_awkward_values() -> None:
    rows: list[syn.Row] = [("1", None, "a\tb", "c\nd", "e\\f", "\\N", "g\rh", "🎉 é", "")]
    line = syn.tsv_lines(rows)
    assert line == "1\t\\N\ta\\tb\tc\\nd\te\\\\f\t\\\\N\tg\\rh\t🎉 é\t\n"
    assert syn.tsv_lines([("1", "plain", None)]) == "1\tplain\t\\N\n"


def test_edge_rows_have_known_ids_and_respect_not_null() -> None:
    rows = syn.edge_case_rows()
    for table in syn.TABLES:
        ids = [int(r[0]) for r in rows[table]]
        assert ids and all(E < i < syn.MISSING_LEAD_PURCHASE_ID for i in ids), table
        assert len(set(ids)) == len(ids)
    ct = {int(r[0]): dict(zip(syn.COLUMNS["credit_transactions"], r, strict=True))
          for r in rows["credit_transactions"]}  # fmt: skip
    assert len(ct[E + 4]["description"].encode()) == 60 * 1024


# ---------------------------------------------------------------------------------------
# Loads into MariaDB
# ---------------------------------------------------------------------------------------


def test_row_counts_equal_what_generate_says(tiny_dbs: tuple[str, str]) -> None:
    expected = syn.count_rows(TINY, SEED)
    for table in syn.TABLES:
        assert _scalar(tiny_dbs[0], f"SELECT COUNT(*) FROM `{table}`") == expected[table]


def test_same_seed_gives_identical_databases(tiny_dbs: tuple[str, str]) -> None:
    first, second = (_db_checksums(db) for db in tiny_dbs)
    assert first == second
    # ...and they hold exactly the generated text, value for value.
    assert first == syn.table_checksums(TINY, SEED)


def test_edge_db_matches_the_generated_rows(edge_db: str) -> None:
    assert _db_checksums(edge_db) == syn.table_checksums(SMALL, SEED, edge_cases=True)


def test_edge_rows_read_back_exactly(edge_db: str) -> None:
    conn = _connect(edge_db)
    try:
        with conn.cursor() as cur:
            for table, rows in syn.edge_case_rows().items():
                cols = ", ".join(f"CAST(`{c}` AS CHAR)" for c in syn.COLUMNS[table])
                cur.execute(f"SELECT {cols} FROM `{table}` WHERE id >= %s ORDER BY id", (E,))
                assert list(cur.fetchall()) == rows, table
    finally:
        conn.close()


def test_insert_fallback_loads_the_same_data(new_db: Callable[[], str], edge_db: str) -> None:
    # Parameterised INSERTs and LOAD DATA of escaped TSV must store identical values.
    name = new_db()
    counts = syn.load(PARAMS, name, SMALL, SEED, edge_cases=True, create_schema=True,
                      method="insert")  # fmt: skip
    assert counts == syn.count_rows(SMALL, SEED, edge_cases=True)
    assert _db_checksums(name) == _db_checksums(edge_db)


def test_balances_are_running_sums(edge_db: str) -> None:
    for order in ("id", "created_at, id"):
        broken = _scalar(
            edge_db,
            f"""SELECT COUNT(*) FROM (
                  SELECT amount, balance_after,
                         COALESCE(LAG(balance_after) OVER (
                           PARTITION BY venue_id ORDER BY {order}), 0) AS previous
                  FROM credit_transactions) t
                WHERE balance_after <> previous + amount""",
        )
        assert broken == 0, order
    wrong_balance = _scalar(
        edge_db,
        """SELECT COUNT(*) FROM venues v
           LEFT JOIN (SELECT venue_id, balance_after,
                             ROW_NUMBER() OVER (PARTITION BY venue_id ORDER BY id DESC) AS rn
                      FROM credit_transactions) t ON t.venue_id = v.id AND t.rn = 1
           WHERE v.credit_balance <> COALESCE(t.balance_after, 0)""",
    )
    assert wrong_balance == 0
    assert _scalar(edge_db, "SELECT COUNT(*) FROM venues WHERE credit_balance < 0") > 0


def test_every_purchase_has_its_purchase_transaction(edge_db: str) -> None:
    unmatched = _scalar(
        edge_db,
        f"""SELECT COUNT(*) FROM lead_purchases p
            LEFT JOIN credit_transactions t
              ON t.lead_purchase_id = p.id AND t.type = 'purchase'
            WHERE p.id < {E} AND (t.id IS NULL OR t.amount <> -p.amount_paid
                  OR t.venue_id <> p.venue_id OR t.created_at <> p.created_at)""",
    )
    assert unmatched == 0
    duplicated = _scalar(
        edge_db,
        """SELECT COUNT(*) FROM (SELECT lead_purchase_id FROM credit_transactions
                                 WHERE type = 'purchase' GROUP BY lead_purchase_id
                                 HAVING COUNT(*) > 1) d""",
    )
    assert duplicated == 0
    n_purchases = _scalar(edge_db, f"SELECT COUNT(*) FROM lead_purchases WHERE id < {E}")
    n_tx = _scalar(
        edge_db, f"SELECT COUNT(*) FROM credit_transactions WHERE type = 'purchase' AND id < {E}"
    )
    assert n_purchases == n_tx > 0


def test_zero_dates_exist_in_every_timestamp_column(edge_db: str) -> None:
    for table, kinds in syn._KINDS.items():
        for col, kind in kinds.items():
            if kind == "ts":
                zero = "0000-00-00 00:00:00"
            elif kind == "date":
                zero = "0000-00-00"
            else:
                continue
            sql = f"SELECT COUNT(*) FROM `{table}` WHERE CAST(`{col}` AS CHAR) = '{zero}'"
            n = _scalar(edge_db, sql)
            assert n >= 1, f"{table}.{col}"
    partial = _scalar(
        edge_db, "SELECT COUNT(*) FROM leads WHERE CAST(preferred_date AS CHAR) = '2024-05-00'"
    )
    assert partial == 1


def test_null_exists_in_every_nullable_column(edge_db: str) -> None:
    for table, cols in syn.COLUMNS.items():
        for col in cols:
            if col in syn.NOT_NULL[table]:
                continue
            n = _scalar(edge_db, f"SELECT COUNT(*) FROM `{table}` WHERE `{col}` IS NULL")
            assert n >= 1, f"{table}.{col}"


def test_json_edge_cases(edge_db: str) -> None:
    for col in ("suburb_preferences", "location_selections"):
        assert _scalar(edge_db, f"SELECT COUNT(*) FROM leads WHERE NOT JSON_VALID({col})") >= 1
        assert _scalar(edge_db, f"SELECT COUNT(*) FROM leads WHERE {col} = 'null'") >= 1
    for text in ("[]", "{}"):
        sql = (
            f"SELECT COUNT(*) FROM leads WHERE '{text}' "
            "IN (suburb_preferences, location_selections)"
        )
        assert _scalar(edge_db, sql) >= 1
    nested = _scalar(
        edge_db,
        "SELECT JSON_EXTRACT(location_selections, '$[0].extra.nested[2]') "
        f"FROM leads WHERE id = {E + 3}",
    )
    assert nested == '{"deep": null}'
    # The normal rows use the documented shapes.
    shape = _scalar(
        edge_db,
        f"""SELECT COUNT(*) FROM leads WHERE id < {E} AND location_selections IS NOT NULL
            AND JSON_TYPE(JSON_EXTRACT(location_selections, '$[0].area_id')) <> 'INTEGER'""",
    )
    assert shape == 0


def test_orphans_and_unreferenced_rows_exist(edge_db: str) -> None:
    checks = {
        "match -> missing lead": """SELECT COUNT(*) FROM lead_matches m
            LEFT JOIN leads l ON l.id = m.lead_id WHERE l.id IS NULL""",
        "match -> missing venue": """SELECT COUNT(*) FROM lead_matches m
            LEFT JOIN venues v ON v.id = m.venue_id WHERE v.id IS NULL""",
        "purchase -> missing lead": """SELECT COUNT(*) FROM lead_purchases p
            LEFT JOIN leads l ON l.id = p.lead_id WHERE l.id IS NULL""",
        "purchase -> missing venue": """SELECT COUNT(*) FROM lead_purchases p
            LEFT JOIN venues v ON v.id = p.venue_id WHERE v.id IS NULL""",
        "transaction -> missing venue": """SELECT COUNT(*) FROM credit_transactions t
            LEFT JOIN venues v ON v.id = t.venue_id WHERE v.id IS NULL""",
        "transaction -> missing purchase": """SELECT COUNT(*) FROM credit_transactions t
            LEFT JOIN lead_purchases p ON p.id = t.lead_purchase_id
            WHERE t.lead_purchase_id IS NOT NULL AND p.id IS NULL""",
        "room -> missing venue": """SELECT COUNT(*) FROM rooms r
            LEFT JOIN venues v ON v.id = r.venue_id WHERE v.id IS NULL""",
        "venue -> missing area": """SELECT COUNT(*) FROM venues v
            LEFT JOIN areas a ON a.id = v.area_id WHERE v.area_id IS NOT NULL AND a.id IS NULL""",
        "lead with an occasion key absent from occasion_types": """SELECT COUNT(*) FROM leads l
            LEFT JOIN occasion_types o ON o.`key` = l.occasion_type WHERE o.id IS NULL""",
        "unreferenced lead": f"""SELECT COUNT(*) FROM leads l WHERE l.id = {E + 6}
            AND NOT EXISTS (SELECT 1 FROM lead_matches m WHERE m.lead_id = l.id)
            AND NOT EXISTS (SELECT 1 FROM lead_purchases p WHERE p.lead_id = l.id)""",
        "unreferenced venue": f"""SELECT COUNT(*) FROM venues v WHERE v.id = {E + 4}
            AND NOT EXISTS (SELECT 1 FROM lead_matches m WHERE m.venue_id = v.id)
            AND NOT EXISTS (SELECT 1 FROM lead_purchases p WHERE p.venue_id = v.id)
            AND NOT EXISTS (SELECT 1 FROM credit_transactions t WHERE t.venue_id = v.id)
            AND NOT EXISTS (SELECT 1 FROM rooms r WHERE r.venue_id = v.id)""",
    }
    for what, sql in checks.items():
        assert _scalar(edge_db, sql) >= 1, what


def test_extreme_values_and_unknown_enums(edge_db: str) -> None:
    money_columns = [
        ("venues", "credit_balance"),
        ("lead_purchases", "amount_paid"),
        ("credit_transactions", "amount"),
        ("credit_transactions", "balance_after"),
    ]
    for table, col in money_columns:
        lo, hi = (_scalar(edge_db, f"SELECT {fn}(`{col}`) FROM `{table}`") for fn in ("MIN", "MAX"))
        assert (lo, hi) == (Decimal("-99999999.99"), Decimal("99999999.99")), (table, col)
    sql = f"SELECT LENGTH(description) FROM credit_transactions WHERE id = {E + 4}"
    assert _scalar(edge_db, sql) == 61_440
    unknown = {
        ("venues", "status"): "'pending','active','inactive','suspended'",
        ("leads", "status"): "'new','distributed','partially_fulfilled','fulfilled','expired',"
        "'cancelled'",
        ("lead_matches", "status"): "'notified','viewed','purchased','expired','declined'",
        ("lead_purchases", "lead_status"): "'contacted','quoted','booked','lost','pending'",
        ("credit_transactions", "type"): "'topup','auto_topup','purchase','refund','adjustment'",
    }
    for (table, col), known in unknown.items():
        sql = f"SELECT COUNT(*) FROM `{table}` WHERE `{col}` NOT IN ({known})"
        assert _scalar(edge_db, sql) >= 1
        # Only the edge rows hold unknown values.
        assert (
            _scalar(
                edge_db,
                f"SELECT COUNT(*) FROM `{table}` WHERE id < {E} AND `{col}` NOT IN ({known})",
            )
            == 0
        )


def _index_layout(database: str) -> list[tuple]:
    conn = _connect()
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NON_UNIQUE "
                "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s ORDER BY 1, 2, 3",
                (database,),
            )
            return list(cur.fetchall())
    finally:
        conn.close()


def test_deferred_indexes_are_rebuilt(new_db: Callable[[], str], edge_db: str) -> None:
    fresh = new_db()
    syn.create_database_schema(PARAMS, fresh)
    layout = _index_layout(fresh)
    assert ("lead_matches", "lead_matches_venue_id_index", 1, "venue_id", 1) in layout
    assert _index_layout(edge_db) == layout


def test_indexes_come_back_when_a_load_fails(
    new_db: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_generate = syn.generate

    def failing(
        scale: float, seed: int, edge_cases: bool = False, chunk_rows: int = 50_000
    ) -> Iterator[dict[str, list[syn.Row]]]:
        yield next(real_generate(scale, seed, edge_cases, chunk_rows))
        raise RuntimeError("generator failed")

    monkeypatch.setattr(syn.simulation, "generate", failing)
    name, fresh = new_db(), new_db()
    with pytest.raises(RuntimeError, match="generator failed"):
        syn.load(PARAMS, name, TINY, SEED, create_schema=True)
    syn.create_database_schema(PARAMS, fresh)
    assert _index_layout(name) == _index_layout(fresh)


def test_load_refuses_tables_that_are_not_empty(tiny_dbs: tuple[str, str]) -> None:
    with pytest.raises(RuntimeError, match="not empty"):
        syn.load(PARAMS, tiny_dbs[0], TINY, SEED)


def test_command_line(new_db: Callable[[], str]) -> None:
    name = new_db()
    password = "not-a-real-password"  # only checked for absence in the output
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # root has an empty password; a wrong one must fail without echoing it.
    bad = subprocess.run(
        [sys.executable, "-m", "scripts.synthetic", "--database", name, "--scale", "0.01",
         "--password", password, "--create-schema"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode != 0
    assert password not in bad.stdout + bad.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "scripts.synthetic", "--host", "127.0.0.1", "--port", "3306",
         "--user", "root", "--password", "", "--database", name, "--scale", "0.01",
         "--seed", "42", "--create-schema", "--edge-cases"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    printed = dict(line.split("\t") for line in ok.stdout.splitlines())
    expected = syn.count_rows(TINY, 42, edge_cases=True)
    assert {t: int(n) for t, n in printed.items()} == expected
    assert _db_checksums(name) == syn.table_checksums(TINY, 42, edge_cases=True)
