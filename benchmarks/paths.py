"""One measured path, run in a child process by ``benchmarks.run`` (peak RSS is per process).

    python -m benchmarks.paths export-local --database DB --table ph_lead_purchases --out DIR
    python -m benchmarks.paths export-gcs   --database DB --table ph_lead_purchases --bucket B

Both use the project's real export code (``partyhelp_pipeline.export``): ``plan_export``, then
``export_chunk`` for every chunk of the plan, then (GCS only) ``commit_manifest``, with a
plain ``logging`` logger (outside a flow run; Prefect is not imported, so peak RSS is the
export's own: the whole-flow sync's includes Prefect). Chunks
run concurrently in threads, as the flow's default task runner runs them. "local" writes
the parts into a folder through ``LocalPartStore`` instead of uploading them. Settings come
from the usual ``PARTYHELP_*`` variables (``benchmarks.run`` sets them). The last line
printed is a JSON object: seconds and cpu_seconds (the work, imports excluded; CPU of
every thread of the process), rows, files, bytes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from partyhelp_pipeline import export
from partyhelp_pipeline import manifest as mf
from partyhelp_pipeline.export_target import ExportTarget
from partyhelp_pipeline.settings import load_settings, read_setting
from partyhelp_pipeline.spec import TABLES

SYNC_DATE = dt.date(2026, 11, 25)


class LocalPartStore:
    """Parts go into a local folder (same checksum work as an upload, no network)."""

    def __init__(self, root: str) -> None:
        self._root = root

    def put(self, name: str, path: str, rows: int, chunk: int) -> mf.PartInfo:
        """Move the finished part under ``root/name``."""
        target = os.path.join(self._root, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        size = os.path.getsize(path)
        crc = mf.file_crc32c_base64(path)
        os.replace(path, target)
        return mf.PartInfo(target, rows, size, crc, chunk)


def run_export(table: str, out: str | None) -> dict[str, int | float]:
    """Export ``table`` the way the flow does, into GCS or (with ``out``) a local folder."""
    target = ExportTarget.from_settings(load_settings())
    spec = TABLES[table]
    store = LocalPartStore(out) if out else None
    # A plain logger: the export alone, without Prefect (whose run logger would import it).
    logger = logging.getLogger("benchmark")
    started, cpu_started = time.perf_counter(), time.process_time()
    plan = export.plan_export(target, spec, SYNC_DATE, "benchmark")
    workers = min(len(plan.chunks), read_setting("max_workers"))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        chunks = list(
            pool.map(
                lambda i: export.export_chunk(target, spec, plan, i, logger, store),
                range(len(plan.chunks)),
            )
        )
    if out is None:
        export.commit_manifest(target, spec, plan, chunks)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    parts = [p for c in chunks for p in c.parts]
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "rows": sum(c.rows for c in chunks),
        "files": len(parts),
        "bytes": sum(p.bytes for p in parts),
        "chunks": len(plan.chunks),
    }


def main(argv: list[str] | None = None) -> int:
    """Run one path and print its JSON result."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.paths")
    parser.add_argument("path", choices=("export-local", "export-gcs"))
    parser.add_argument("--table", default="ph_lead_purchases", choices=sorted(TABLES))
    parser.add_argument("--out", help="folder for export-local")
    args = parser.parse_args(argv)
    if args.path == "export-local" and not args.out:
        parser.error("export-local needs --out")
    result = run_export(args.table, args.out if args.path == "export-local" else None)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
