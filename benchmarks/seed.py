"""Seed MariaDB with the synthetic generator for the benchmark, reusing what is already there.

Two kinds of database:

* ``ph_bench_lp_<N>``: exactly N ``lead_purchases`` rows (ids 1..N) and the tables the
  ph_lead_purchases query joins (leads, occasion_types, venues, areas). The generator runs
  at a scale a little above what N needs and purchases past id N are not loaded (venues
  come out only at the end of the simulation, so it always runs to the end).
* ``ph_bench_flow_<S>``: the whole synthetic dataset at scale S (all 8 tables), loaded by
  ``scripts.synthetic.load``, for the whole-flow sync.

Both are bulk-loaded with ``LOAD DATA LOCAL INFILE`` while Python generates the next chunk.
A marker table ``_bench_seed`` records what was loaded (kind, scale, seed, row counts); a
database whose marker and row counts match is reused, so the 10M-row seed runs only once.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pymysql

from scripts import synthetic

SEED = 42
# The generator makes ~1,720 purchases per unit of scale (2.15 per lead, 800 leads per unit);
# a lower figure here leaves headroom so that N purchases are always reached.
PURCHASES_PER_SCALE = 1_650
PURCHASE_TABLES = ("occasion_types", "areas", "venues", "leads", "lead_purchases")
MARKER = "_bench_seed"

Log = Callable[[str], None]


def admin_params() -> dict[str, Any]:
    """pymysql.connect() arguments of the benchmark's MariaDB (root on the local stack)."""
    return {
        "host": os.environ.get("PARTYHELP_BENCH_MYSQL_HOST", "127.0.0.1"),
        "port": int(os.environ.get("PARTYHELP_BENCH_MYSQL_PORT", "3306")),
        "user": os.environ.get("PARTYHELP_BENCH_MYSQL_USER", "root"),
        "password": os.environ.get("PARTYHELP_BENCH_MYSQL_PASSWORD", ""),
    }


def _connect(database: str | None = None, **extra: Any) -> pymysql.Connection:
    return pymysql.connect(
        **admin_params(), database=database, charset="utf8mb4", autocommit=True, **extra
    )


def generator_digest() -> str:
    """SHA-256 of the generator's source (recorded in the marker, for the record): its
    module, or every module of its package."""
    source = Path(synthetic.__file__)
    files = sorted(source.parent.glob("*.py")) if source.name == "__init__.py" else [source]
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def read_marker(database: str) -> dict[str, Any] | None:
    """The marker of a seeded database, or None when it is missing or incomplete."""
    try:
        with _connect(database) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT v FROM `{MARKER}` WHERE k = 'seed'")
            row = cur.fetchone()
    except pymysql.MySQLError:
        return None
    return json.loads(row[0]) if row else None


def table_counts(database: str, tables: tuple[str, ...]) -> dict[str, int]:
    """Exact row counts."""
    counts = {}
    with _connect(database) as conn, conn.cursor() as cur:
        for table in tables:
            cur.execute(f"SELECT COUNT(*) FROM `{table}`")
            counts[table] = int(cur.fetchone()[0])
    return counts


def _reusable(database: str, wanted: Mapping[str, Any], log: Log) -> dict[str, Any] | None:
    marker = read_marker(database)
    if marker is None:
        return None
    if any(marker.get(k) != v for k, v in wanted.items()):
        log(f"{database}: marker {marker} differs from {dict(wanted)}: re-seeding")
        return None
    if table_counts(database, tuple(marker["counts"])) != marker["counts"]:
        log(f"{database}: row counts differ from the marker: re-seeding")
        return None
    return marker


def _write_marker(database: str, marker: dict[str, Any]) -> None:
    with _connect(database) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE IF NOT EXISTS `{MARKER}` (k VARCHAR(32) PRIMARY KEY, v TEXT)")
        cur.execute(f"REPLACE INTO `{MARKER}` (k, v) VALUES ('seed', %s)", (json.dumps(marker),))


def _reuse_or_recreate(
    database: str, wanted: Mapping[str, Any], reseed: bool, log: Log, unit: str
) -> dict[str, Any] | None:
    """The marker of a database that already holds what is wanted, else None once the
    database has been re-created empty for seeding."""
    if not reseed and (marker := _reusable(database, wanted, log)):
        counted = (
            marker["counts"].get("lead_purchases")
            if unit == "purchases"
            else sum(marker["counts"].values())
        )
        log(f"{database}: reusing ({counted:,} {unit})")
        return marker
    log(f"{database}: seeding {', '.join(f'{k} {v}' for k, v in wanted.items())}")
    _recreate(database)
    return None


def _recreate(database: str) -> None:
    with _connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
    synthetic.create_database_schema(admin_params(), database)


def _load_sql(table: str) -> str:
    cols = ", ".join(f"`{c}`" for c in synthetic.COLUMNS[table])
    return (
        f"LOAD DATA LOCAL INFILE %s INTO TABLE `{table}` CHARACTER SET utf8mb4 "
        "FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' "
        f"({cols})"
    )


def purchases_database(rows: int) -> str:
    """Name of the database that holds exactly ``rows`` purchases."""
    return f"ph_bench_lp_{rows}"


class _BackgroundLoader:
    """Loads TSV files with ``LOAD DATA LOCAL INFILE`` on a thread of its own, while the
    caller generates the next ones. After the first error it only deletes the files it is
    given; ``close`` waits for it and raises that error."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.jobs: queue.Queue[tuple[str, str, int] | None] = queue.Queue(maxsize=8)
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name="bench-loader", daemon=True)
        self.thread.start()

    def load(self, table: str, path: str, rows: int) -> None:
        """Queue ``path`` (``rows`` rows of ``table``); the loader deletes it when done."""
        self.jobs.put((table, path, rows))

    def _run(self) -> None:
        with _connect(self.database, local_infile=True) as conn:
            with conn.cursor() as cur:
                cur.execute("SET SESSION time_zone = '+00:00'")
            while (job := self.jobs.get()) is not None:
                table, path, n = job
                try:
                    if not self.errors:
                        with conn.cursor() as cur:
                            cur.execute(_load_sql(table), (path,))
                            if cur.rowcount != n:
                                raise RuntimeError(f"{table}: loaded {cur.rowcount} of {n} rows")
                except BaseException as exc:
                    self.errors.append(exc)
                finally:
                    os.unlink(path)

    def stop(self) -> None:
        """Wait until every queued file is loaded (or skipped after an error)."""
        self.jobs.put(None)
        self.thread.join()

    def raise_first_error(self) -> None:
        if self.errors:
            raise self.errors[0]


def _generate_purchases(
    rows: int, scale: float, folder: str, loader: _BackgroundLoader, log: Log
) -> None:
    """Generate at ``scale`` and hand each chunk of PURCHASE_TABLES (purchases up to id
    ``rows`` only) to ``loader`` as TSV files in ``folder``, until the end or an error."""
    started = time.perf_counter()
    counts = dict.fromkeys(PURCHASE_TABLES, 0)
    part = 0
    for chunk in synthetic.generate(scale, SEED, chunk_rows=200_000):
        if loader.errors:
            break
        for table in PURCHASE_TABLES:
            batch = chunk.get(table) or []
            if table == "lead_purchases":
                batch = [r for r in batch if int(r[0]) <= rows]
            if not batch:
                continue
            counts[table] += len(batch)
            part += 1
            path = os.path.join(folder, f"{part:06d}.{table}.tsv")
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write(synthetic.tsv_lines(batch))
            loader.load(table, path, len(batch))
        if part % 20 == 0:
            log(f"  {counts['lead_purchases']:,} purchases ({time.perf_counter() - started:.0f} s)")


def _check_purchases(database: str, rows: int) -> dict[str, int]:
    """The loaded row counts, once purchases are exactly ids 1..``rows``."""
    loaded = table_counts(database, PURCHASE_TABLES)
    with _connect(database) as conn, conn.cursor() as cur:
        cur.execute("SELECT MIN(id), MAX(id) FROM lead_purchases")
        low, high = cur.fetchone()
    if loaded["lead_purchases"] != rows or (low, high) != (1, rows):
        raise RuntimeError(
            f"{database}: wanted purchases 1..{rows}, got {loaded} ids "
            f"{low}..{high}; raise the scale"
        )
    return loaded


def _finish(
    database: str, wanted: Mapping[str, Any], counts: dict[str, int], started: float
) -> dict[str, Any]:
    """Fresh statistics for the planner on the loaded tables, then the marker that lets
    later runs reuse the database; returns the marker."""
    with _connect(database) as conn, conn.cursor() as cur:
        for table in counts:
            cur.execute(f"ANALYZE TABLE `{table}`")
            cur.fetchall()
    marker = {
        **wanted,
        "counts": counts,
        "generator": generator_digest(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    _write_marker(database, marker)
    return marker


def ensure_purchases(rows: int, log: Log = print, reseed: bool = False) -> dict[str, Any]:
    """A database with exactly ``rows`` purchases (ids 1..rows) and what they join to."""
    database = purchases_database(rows)
    scale = min(synthetic.MAX_SCALE, max(1.0, round(rows / PURCHASES_PER_SCALE, 2)))
    wanted = {"kind": "lead_purchases", "seed": SEED, "scale": scale, "purchases": rows}
    if marker := _reuse_or_recreate(database, wanted, reseed, log, "purchases"):
        return marker
    started = time.perf_counter()
    loader = _BackgroundLoader(database)
    with tempfile.TemporaryDirectory(prefix="ph_bench_seed_") as tmpdir:
        try:
            _generate_purchases(rows, scale, tmpdir, loader, log)
        finally:
            loader.stop()
    loader.raise_first_error()
    marker = _finish(database, wanted, _check_purchases(database, rows), started)
    log(f"{database}: seeded in {marker['seconds']:.0f} s: {marker['counts']}")
    return marker


def derive_purchases(
    rows: int, base_rows: int, log: Log = print, reseed: bool = False
) -> dict[str, Any]:
    """A database of ``rows`` purchases built from the ``base_rows`` one in minutes instead
    of the generator's hour: its purchases copied ``rows // base_rows`` times, ids shifted by
    ``base_rows`` at each copy (ids 1..rows), the tables they join copied once. Each lead and
    venue is bought that many times more often; the query's cost per row does not see it
    (every purchase joins its lead, venue, area and occasion by key)."""
    if rows <= base_rows or rows % base_rows:
        raise ValueError(f"{rows:,} purchases are not a multiple of {base_rows:,}")
    base = ensure_purchases(base_rows, log, reseed)
    database, source = purchases_database(rows), purchases_database(base_rows)
    wanted = {
        "kind": "lead_purchases",
        "seed": SEED,
        "purchases": rows,
        "derived_from": source,
        "base_generator": base["generator"],
    }
    if marker := _reuse_or_recreate(database, wanted, reseed, log, "purchases"):
        return marker
    started = time.perf_counter()
    columns = synthetic.COLUMNS["lead_purchases"]
    with _connect(database) as conn, conn.cursor() as cur:
        for table in (t for t in PURCHASE_TABLES if t != "lead_purchases"):
            cur.execute(f"INSERT INTO `{table}` SELECT * FROM `{source}`.`{table}`")
        for copy in range(rows // base_rows):
            shifted = ", ".join(
                f"`{c}` + {copy * base_rows}" if c == "id" else f"`{c}`" for c in columns
            )
            cur.execute(
                f"INSERT INTO lead_purchases ({', '.join(f'`{c}`' for c in columns)}) "
                f"SELECT {shifted} FROM `{source}`.lead_purchases ORDER BY id"
            )
            log(f"  {(copy + 1) * base_rows:,} purchases ({time.perf_counter() - started:.0f} s)")
    marker = _finish(database, wanted, _check_purchases(database, rows), started)
    log(f"{database}: derived from {source} in {marker['seconds']:.0f} s")
    return marker


def ensure_size(
    rows: int, derive_from: int | None, log: Log = print, reseed: bool = False
) -> dict[str, Any]:
    """The purchases database of ``rows``: derived from the ``derive_from`` one when given
    and smaller, else generated."""
    if derive_from and rows > derive_from:
        return derive_purchases(rows, derive_from, log, reseed)
    return ensure_purchases(rows, log, reseed)


def flow_database(scale: float) -> str:
    """Name of the whole-dataset database at ``scale``."""
    return f"ph_bench_flow_{scale:g}".replace(".", "_")


def ensure_flow(scale: float, log: Log = print, reseed: bool = False) -> dict[str, Any]:
    """The whole synthetic dataset (all 8 tables) at ``scale``, for the whole-flow sync."""
    database = flow_database(scale)
    wanted = {"kind": "flow", "seed": SEED, "scale": scale}
    if marker := _reuse_or_recreate(database, wanted, reseed, log, "rows"):
        return marker
    started = time.perf_counter()
    synthetic.load(admin_params(), database, scale, SEED, create_schema=False, log=log)
    marker = _finish(database, wanted, table_counts(database, synthetic.TABLES), started)
    log(f"{database}: seeded in {marker['seconds']:.0f} s")
    return marker


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--purchases", type=lambda s: [int(x) for x in s.split(",")], default=[])
    parser.add_argument(
        "--derive-from",
        type=int,
        default=None,
        help="build sizes above this one from its database (derive_purchases)",
    )
    parser.add_argument("--flow-scale", type=float, default=None)
    parser.add_argument("--reseed", action="store_true")
    args = parser.parse_args()
    for n in args.purchases:
        ensure_size(n, args.derive_from, reseed=args.reseed)
    if args.flow_scale:
        ensure_flow(args.flow_scale, reseed=args.reseed)
