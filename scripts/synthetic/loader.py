"""Loading into MariaDB or MySQL: TSV chunks through ``LOAD DATA LOCAL INFILE`` (or multi-row
INSERTs), a loader thread that ingests one chunk while the next is generated, and the
secondary indexes dropped during the load and rebuilt at the end (also on failure)."""

from __future__ import annotations

import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, cast

import pymysql

from . import simulation
from .common import COLUMNS, TABLES, Row
from .edge_cases import edge_case_rows, mysql_edge_case_rows
from .schema import connect, create_database_schema, is_mariadb
from .simulation import planned_sizes

_TSV_ESCAPES = str.maketrans(
    {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0", "\x1a": "\\Z"}
)


def tsv_field(v: str | None) -> str:
    """Escape one value for LOAD DATA ... FIELDS ESCAPED BY '\\\\' (NULL is \\N)."""
    return "\\N" if v is None else v.translate(_TSV_ESCAPES)


def tsv_lines(rows: list[Row]) -> str:
    """Render rows as LOAD DATA text: tab-separated, '\\n'-terminated, escaped."""
    out = []
    for row in rows:
        nulls = row.count(None)
        line = "\t".join(
            ["\\N" if v is None else v for v in row] if nulls else cast("tuple[str, ...]", row)
        )
        # Fast path: the joined line proves no value holds a tab, newline, CR or backslash
        # (the only backslashes are those of the \N markers); otherwise escape per value.
        if (
            line.count("\t") != len(row) - 1
            or line.count("\\") != nulls
            or "\n" in line
            or "\r" in line
            or "\0" in line
            or "\x1a" in line
        ):
            line = "\t".join([tsv_field(v) for v in row])
        out.append(line)
    out.append("")
    return "\n".join(out)


def _load_sql(table: str) -> str:
    cols = ", ".join(f"`{c}`" for c in COLUMNS[table])
    return (
        f"LOAD DATA LOCAL INFILE %s INTO TABLE `{table}` CHARACTER SET utf8mb4 "
        "FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' "
        f"({cols})"
    )


def _insert_sql(table: str) -> str:
    cols = ", ".join(f"`{c}`" for c in COLUMNS[table])
    marks = ", ".join(["%s"] * len(COLUMNS[table]))
    return f"INSERT INTO `{table}` ({cols}) VALUES ({marks})"


def _check_warnings(cur: pymysql.cursors.Cursor, table: str) -> None:
    if cur.warning_count:
        cur.execute("SHOW WARNINGS LIMIT 5")
        raise RuntimeError(f"{table}: load produced warnings: {cur.fetchall()!r}")


def _load_rows(
    conn: pymysql.Connection, table: str, rows: list[Row], method: str, tmpdir: str
) -> None:
    """Load rows into table with LOAD DATA LOCAL (method 'infile') or multi-row INSERTs."""
    with conn.cursor() as cur:
        if method == "infile":
            path = os.path.join(tmpdir, f"{table}.edge.tsv")
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write(tsv_lines(rows))
            try:
                cur.execute(_load_sql(table), (path,))
            finally:
                os.unlink(path)
        else:
            cur.executemany(_insert_sql(table), rows)
        _check_warnings(cur, table)
        if cur.rowcount != len(rows):
            # LOAD DATA LOCAL silently skips duplicate keys: treat a short count as an error.
            raise RuntimeError(f"{table}: loaded {cur.rowcount} rows, expected {len(rows)}")


def _ensure_local_infile(conn: pymysql.Connection, log: Callable[[str], None]) -> bool:
    """True if the server accepts LOAD DATA LOCAL, enabling it globally if we may."""
    with conn.cursor() as cur:
        cur.execute("SHOW GLOBAL VARIABLES LIKE 'local_infile'")
        row = cur.fetchone()
        if row and str(row[1]).upper() in ("ON", "1"):
            return True
        try:
            cur.execute("SET GLOBAL local_infile = 1")
        except pymysql.MySQLError as exc:
            log(f"local_infile is OFF and cannot be enabled ({exc}); using INSERTs")
            return False
        log("local_infile was OFF: enabled it with SET GLOBAL local_infile = 1")
        return True


def _secondary_indexes(conn: pymysql.Connection, database: str) -> dict[str, list[str]]:
    """Return {table: ['ADD INDEX ...' clauses]} for the plain B-tree indexes we may defer.

    Unique, full-text, spatial and functional indexes are left alone: they are either
    cheap here (occasion_types.key) or cannot be rebuilt from information_schema alone.
    """
    with conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, INDEX_TYPE, COLUMN_NAME, SUB_PART, "
            "COLLATION FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
            "ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
            (database,),
        )
        rows = cur.fetchall()
    defs: dict[tuple[str, str], list[str]] = {}
    keep: set[tuple[str, str]] = set()
    for table, index, non_unique, kind, column, sub_part, collation in rows:
        if table not in TABLES:
            continue
        if not non_unique or kind != "BTREE" or column is None:
            keep.add((table, index))
            continue
        part = f"`{column}`" + (f"({sub_part})" if sub_part else "")
        defs.setdefault((table, index), []).append(part + (" DESC" if collation == "D" else ""))
    out: dict[str, list[str]] = {}
    for (table, index), cols in defs.items():
        if (table, index) not in keep:
            out.setdefault(table, []).append(f"ADD INDEX `{index}` ({', '.join(cols)})")
    return out


def _drop_indexes(conn: pymysql.Connection, indexes: dict[str, list[str]]) -> None:
    with conn.cursor() as cur:
        for table, clauses in indexes.items():
            names = [c.split("`")[1] for c in clauses]
            cur.execute(f"ALTER TABLE `{table}` " + ", ".join(f"DROP INDEX `{n}`" for n in names))


def _add_indexes(conn: pymysql.Connection, indexes: dict[str, list[str]]) -> None:
    with conn.cursor() as cur:
        for table, clauses in indexes.items():
            # One ALTER per table: InnoDB builds all its indexes in one sorted pass.
            cur.execute(f"ALTER TABLE `{table}` " + ", ".join(clauses))


class _Loader(threading.Thread):
    """Loads TSV files (or row batches) from a queue on its own connection.

    It lets the server ingest one chunk while Python generates the next: the two
    cores of the test machines are then both busy.
    """

    def __init__(self, conn: pymysql.Connection, method: str) -> None:
        super().__init__(name="synthetic-loader", daemon=True)
        self.conn = conn
        self.method = method
        self.jobs: queue.Queue[tuple[str, str | list[Row], int] | None] = queue.Queue(maxsize=12)
        self.error: BaseException | None = None
        self.busy = 0.0  # seconds spent waiting on the server: tells who the bottleneck is

    def run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            if self.error is not None:
                continue  # drain the queue so the producer never blocks
            table, payload, n = job
            started = time.perf_counter()
            try:
                with self.conn.cursor() as cur:
                    if isinstance(payload, str):
                        try:
                            cur.execute(_load_sql(table), (payload,))
                        finally:
                            os.unlink(payload)
                        loaded = cur.rowcount
                    else:
                        loaded = 0
                        for i in range(0, len(payload), 2000):
                            cur.executemany(_insert_sql(table), payload[i : i + 2000])
                            loaded += cur.rowcount
                    _check_warnings(cur, table)
                if loaded != n:
                    raise RuntimeError(f"{table}: loaded {loaded} rows, expected {n}")
            except BaseException as exc:
                self.error = exc
            self.busy += time.perf_counter() - started


def seconds_to_now(conn: pymysql.Connection, before: int = 3600) -> int:
    """Seconds that move the newest ``created_at``/``updated_at`` of the tables to
    ``before`` seconds ago: the shift that makes the data end now."""
    newest = " UNION ALL ".join(
        f"SELECT MAX(`{c}`) AS t FROM `{table}`"
        for table in TABLES
        for c in ("created_at", "updated_at")
    )
    with conn.cursor() as cur:
        cur.execute(f"SELECT UNIX_TIMESTAMP() - UNIX_TIMESTAMP(MAX(t)) FROM ({newest}) AS n")
        (gap,) = cur.fetchone() or (None,)
    return max(0, int(gap or 0) - before)


def shift_dates(conn: pymysql.Connection, seconds: int) -> None:
    """Move every DATETIME and TIMESTAMP value of the tables ``seconds`` later, and every
    DATE by as many whole days (zero dates stay as they are)."""
    days = round(seconds / 86_400)
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
        for table in TABLES:
            cur.execute(
                "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE "
                "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s AND DATA_TYPE IN ('date', "
                "'datetime', 'timestamp')",
                (table,),
            )
            moves = ", ".join(
                f"`{c}` = IF(`{c}` > '1000-01-01', `{c}` + INTERVAL "
                f"{days if kind == 'date' else int(seconds)} "
                f"{'DAY' if kind == 'date' else 'SECOND'}, `{c}`)"
                for c, kind in cur.fetchall()
            )
            if moves:
                cur.execute(f"UPDATE `{table}` SET {moves}")
    conn.commit()


def load(
    conn_params: Mapping[str, Any],
    database: str,
    scale: float,
    seed: int = 42,
    edge_cases: bool = False,
    create_schema: bool = False,
    *,
    method: str = "auto",
    defer_indexes: bool = True,
    chunk_rows: int = 50_000,
    log: Callable[[str], None] | None = None,
    ends_now: bool = False,
) -> dict[str, int]:
    """Generate the dataset and load it into database; return rows loaded per table.

    ends_now moves every date and time of the generated rows (not the edge rows) later, so
    the newest ends an hour ago and a sync finds the source fresh whatever the day (the
    rows, amounts and their order are the same; only the dates move).

    conn_params are pymysql.connect() keyword arguments (host, port, user, password...).
    The 8 tables must exist and be empty, unless create_schema creates them (and the
    database, if missing). method: 'infile' (LOAD DATA LOCAL), 'insert', or 'auto'
    (infile when the server allows it). With defer_indexes, the plain secondary indexes
    of the (empty) tables are dropped during the load and rebuilt at the end, even if
    the load fails: a sorted rebuild is several times cheaper than random index
    inserts once the indexes outgrow the buffer pool.
    """
    say = log or (lambda _msg: None)
    if method not in ("auto", "infile", "insert"):
        raise ValueError(f"method must be auto, infile or insert, not {method!r}")
    planned_sizes(scale)  # validates the scale before touching the database
    if create_schema:
        create_database_schema(conn_params, database)
    conn = connect(conn_params, database)
    loader_conn = connect(conn_params, database)
    try:
        with conn.cursor() as cur:
            for table in TABLES:
                cur.execute(f"SELECT 1 FROM `{table}` LIMIT 1")
                if cur.fetchone():
                    raise RuntimeError(f"{database}.{table} is not empty; refusing to load")
        if method == "auto":
            method = "infile" if _ensure_local_infile(conn, say) else "insert"
        say(f"loading scale={scale:g} seed={seed} into {database} with {method}")
        indexes = _secondary_indexes(conn, database) if defer_indexes else {}
        _drop_indexes(conn, indexes)
        try:
            counts = _load_all(conn, loader_conn, scale, seed, edge_cases, method,
                               chunk_rows, say, ends_now)  # fmt: skip
        finally:
            started = time.perf_counter()
            _add_indexes(conn, indexes)
            if indexes:
                say(f"rebuilt secondary indexes in {time.perf_counter() - started:.1f} s")
        return counts
    finally:
        conn.close()
        loader_conn.close()


def _load_all(
    conn: pymysql.Connection,
    loader_conn: pymysql.Connection,
    scale: float,
    seed: int,
    edge_cases: bool,
    method: str,
    chunk_rows: int,
    say: Callable[[str], None],
    ends_now: bool = False,
) -> dict[str, int]:
    """Stream generate() into the loader thread, shift its dates, then add the edge rows."""
    started = time.perf_counter()
    loader = _Loader(loader_conn, method)
    loader.start()
    with tempfile.TemporaryDirectory(prefix="ph_synthetic_") as tmpdir:
        try:
            counts = _queue_chunks(loader, scale, seed, method, chunk_rows, tmpdir)
        finally:
            loader.jobs.put(None)
            loader.join()
        if loader.error is not None:
            raise loader.error
        say(
            f"loaded {sum(counts.values()):,} rows in {time.perf_counter() - started:.1f} s "
            f"(the server was busy for {loader.busy:.1f} s of it)"
        )
        if ends_now:
            seconds = seconds_to_now(conn)
            shift_dates(conn, seconds)
            say(f"moved every generated date {seconds / 86_400:.1f} days later: it ends now")
        if edge_cases:
            for table, n in _load_edge_rows(conn, method, tmpdir).items():
                counts[table] += n
            say(f"loaded {sum(len(r) for r in edge_case_rows().values())} edge-case rows")
    return counts


def _queue_chunks(
    loader: _Loader, scale: float, seed: int, method: str, chunk_rows: int, tmpdir: str
) -> dict[str, int]:
    """Hand each generated chunk to the loader (as TSV files for 'infile'); rows per table."""
    # Looked up at call time: a test replaces simulation.generate with one that fails
    # midway, to check that the indexes come back.
    generate = simulation.generate

    counts = dict.fromkeys(TABLES, 0)
    part = 0
    for chunk in generate(scale, seed, edge_cases=False, chunk_rows=chunk_rows):
        if loader.error is not None:
            break
        for table, rows in chunk.items():
            if not rows:
                continue
            counts[table] += len(rows)
            if method == "infile":
                part += 1
                path = os.path.join(tmpdir, f"{table}.{part:06d}.tsv")
                with open(path, "w", encoding="utf-8", newline="") as f:
                    f.write(tsv_lines(rows))
                loader.jobs.put((table, path, len(rows)))
            else:
                loader.jobs.put((table, rows, len(rows)))
    return counts


def _load_edge_rows(conn: pymysql.Connection, method: str, tmpdir: str) -> dict[str, int]:
    """Load the edge rows on conn; return rows loaded per table."""
    # Zero dates and malformed JSON need a permissive session: no strict or zero-date
    # modes and, on MariaDB, no CHECK (json_valid(...)) enforcement. MySQL has no such
    # variable, and its JSON columns refuse malformed JSON anyway (see mysql_edge_case_rows).
    mariadb = is_mariadb(conn)
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
        if mariadb:
            cur.execute("SET SESSION check_constraint_checks = 0")
    loaded = {}
    for table, rows in (edge_case_rows() if mariadb else mysql_edge_case_rows()).items():
        _load_rows(conn, table, rows, method, tmpdir)
        loaded[table] = len(rows)
    return loaded
