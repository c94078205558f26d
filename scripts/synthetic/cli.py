"""The command line: ``python -m scripts.synthetic --database NAME [--scale S] ...``."""

from __future__ import annotations

import argparse
import sys

from .common import TABLES
from .loader import load

DESCRIPTION = (
    "Deterministic synthetic Partyhelp source data: a pure generator and a MariaDB bulk loader."
)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: generate and load a synthetic Partyhelp database."""
    p = argparse.ArgumentParser(prog="python -m scripts.synthetic", description=DESCRIPTION)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3306)
    p.add_argument("--user", default="root")
    p.add_argument("--password", default="")
    p.add_argument("--database", required=True)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--create-schema",
        action="store_true",
        help="create the database (if missing) and the tables from the DDL file",
    )
    p.add_argument(
        "--edge-cases",
        action="store_true",
        help="add the fixed legacy rows (ids from EDGE_ID_BASE + 1)",
    )
    p.add_argument("--method", choices=("auto", "infile", "insert"), default="auto")
    p.add_argument("--chunk-rows", type=int, default=50_000)
    p.add_argument(
        "--keep-indexes",
        action="store_true",
        help="load with the secondary indexes in place (slower at large scales)",
    )
    args = p.parse_args(argv)
    params = {"host": args.host, "port": args.port, "user": args.user, "password": args.password}

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    counts = load(params, args.database, args.scale, args.seed, edge_cases=args.edge_cases,
                  create_schema=args.create_schema, method=args.method,
                  defer_indexes=not args.keep_indexes, chunk_rows=args.chunk_rows,
                  log=log)  # fmt: skip
    for table in TABLES:
        print(f"{table}\t{counts[table]}")
    return 0
