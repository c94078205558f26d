"""One export-gcs (``benchmarks.paths``) with its memory sampled every 20 ms (issue 22).

    python -m benchmarks.memory_probe [--tracemalloc]

``benchmarks.server_cpu memory`` runs it in a child process with the usual ``PARTYHELP_*``
settings. It imports only what ``benchmarks.paths`` does, so its RSS is the export's.
Recorded at the RSS peak: RSS (anonymous and file-backed), the Arrow default pool's bytes,
the threads alive; with ``--tracemalloc`` (which costs memory and time itself, so its RSS
is not the export's) the Python heap traced at its own peak and the lines that allocated
most of it. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pyarrow as pa

from benchmarks import paths


def memory_now() -> dict[str, float]:
    """RSS, anonymous and file-backed, in MB (/proc/self/status)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {
        name: int(fields[key].split()[0]) / 1024
        for name, key in (("rss_mb", "VmRSS"), ("anon_mb", "RssAnon"), ("file_mb", "RssFile"))
    }


def sample(stop: threading.Event, peak: dict[str, Any]) -> None:
    """Keep what was held at the RSS peak, and (tracing) a snapshot near the heap's peak."""
    snapshot_at, traced_max = 0.0, 0
    while not stop.wait(0.02):
        now = memory_now()
        if now["rss_mb"] > peak.get("rss_mb", 0.0):
            peak.update(
                now,
                arrow_pool_mb=pa.total_allocated_bytes() / 2**20,
                threads=threading.active_count(),
            )
        if not tracemalloc.is_tracing():
            continue
        traced = tracemalloc.get_traced_memory()[0]
        if traced > traced_max + 2**20 and time.monotonic() - snapshot_at > 0.5:
            traced_max, snapshot_at = traced, time.monotonic()
            peak["snapshot"] = tracemalloc.take_snapshot()
            peak["snapshot_traced_mb"] = traced / 2**20


def probe(trace: bool) -> dict[str, Any]:
    """Export ph_lead_purchases into GCS while ``sample`` watches."""
    after_imports = memory_now()["rss_mb"]
    if trace:
        tracemalloc.start(1)
    peak: dict[str, Any] = {}
    stop = threading.Event()
    sampler = threading.Thread(target=sample, args=(stop, peak), daemon=True)
    sampler.start()
    result = paths.run_export("ph_lead_purchases", None)
    stop.set()
    sampler.join()
    snapshot = peak.pop("snapshot", None)
    top = snapshot.statistics("lineno")[:8] if snapshot else []
    return {
        **result,
        "rss_after_imports_mb": after_imports,
        "at_rss_peak": peak,
        "arrow_pool_max_mb": pa.default_memory_pool().max_memory() / 2**20,
        "arrow_pool_backend": pa.default_memory_pool().backend_name,
        "python_traced_peak_mb": tracemalloc.get_traced_memory()[1] / 2**20 if trace else None,
        "top_traced": [f"{s.traceback[0]}: {s.size / 2**20:.1f} MB" for s in top],
    }


def main() -> int:
    """Run the probe and print its JSON result."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory_probe")
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args()
    print(json.dumps(probe(args.tracemalloc)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
