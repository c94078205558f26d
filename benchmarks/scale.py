"""The whole flow at several sizes of the source: does it complete, and does memory stay flat?

    .venv/bin/python -m benchmarks.scale --scales 100,1000,10000 \
        --env PARTYHELP_PART_MAX_BYTES=16777216 --env PARTYHELP_LOAD_MAX_URIS=1

needs the local stack (``eval "$(scripts/stack.sh env)"``; ``scripts/stack.sh start``).
Scale 100 of the synthetic generator is today's production size (~1M rows in the five
tables), 10000 is 100x that (~100M rows: ~55M lead matches, ~21M credit transactions).
Each scale's database is seeded once (``benchmarks.seed``, reused later), then one sync,
``python -m flows.partyhelp_sync`` with the project's defaults and the ``--env`` settings
(at 100x the BigQuery emulator needs small load jobs: it holds each job's rows as Python
objects; see docs/BENCHMARKS.md), runs in its own process
through fake-gcs-server and the BigQuery emulator, under the Prefect server. Recorded:

- the flow process's wall time and peak RSS (``ru_maxrss``, ``benchmarks/launch.py``);
- from the Prefect API: how many export chunks ran, the most that ran at once (memory is
  spent per running chunk), and when the last export and the last load finished;
- the outcome: the flow's exit code and every BigQuery table's row count against the
  source's (the flow itself reconciles counts and money sums; this re-reads them).

The table goes into docs/BENCHMARKS.md (its own section); the raw records are appended to
benchmarks/.work/scale-*.jsonl. The bucket's objects and the dataset are removed after
each scale, so the emulators' disks do not grow.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import re
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks import seed
from benchmarks.run import (
    FLOW_TABLES,
    PROJECT,
    SYNC_DATE,
    Results,
    command_line,
    drop_dataset,
    export_env,
    log,
    machine,
    publish,
    remove_bucket,
    run_child,
    storage,
)

BEGIN, END = "<!-- BEGIN SCALE RESULTS (benchmarks/scale.py) -->", "<!-- END SCALE RESULTS -->"
PREFIX = "bench"
SOURCE_TABLES = {
    "ph_leads": "leads",
    "ph_venues": "venues",
    "ph_lead_purchases": "lead_purchases",
    "ph_credit_transactions": "credit_transactions",
    "ph_lead_matches": "lead_matches",
}


def most_at_once(windows: list[tuple[dt.datetime, dt.datetime]]) -> int:
    """The largest number of ``(start, end)`` windows that overlap at one moment."""
    events = sorted(
        [(start, 1) for start, _ in windows] + [(end, -1) for _, end in windows],
        key=lambda event: (event[0], event[1]),
    )
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


class RssSampler:
    """Samples the resident memory of the running sync process every ``interval`` seconds
    (found by its command line in /proc), to show whether memory grows during a run."""

    def __init__(self, marker: bytes = b"flows.partyhelp_sync", interval: float = 2.0) -> None:
        self.marker = marker
        self.interval = interval
        self.samples: list[tuple[float, float]] = []  # (seconds since start, RSS in MB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _matching(self) -> set[int]:
        found = set()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    argv = (entry / "cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if self.marker in argv and b"-S" not in argv:  # not the launcher
                    found.add(int(entry.name))
        return found

    def _find(self) -> int | None:
        # A sync that was already running (another run's, or a stray one) is not ours.
        return min(self._matching() - self._before, default=None)

    def _run(self) -> None:
        started = time.monotonic()
        pid = None
        while not self._stop.wait(self.interval):
            pid = pid or self._find()
            if pid is None:
                continue
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                pid = None
                continue
            rss = re.search(r"VmRSS:\s+(\d+)", status)
            if rss is None:  # a zombie, exited but not yet reaped: nothing more to sample
                return
            self.samples.append((time.monotonic() - started, int(rss[1]) / 1024))

    def __enter__(self) -> RssSampler:
        self._before = self._matching()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def at(self, fraction: float) -> float:
        """RSS (MB) of the last sample taken before ``fraction`` of the sampled time."""
        if not self.samples:
            return float("nan")
        end = self.samples[-1][0]
        before = [mb for t, mb in self.samples if t <= fraction * end]
        return before[-1] if before else self.samples[0][1]


def task_timeline(flow_run_id: str) -> dict[str, Any]:
    """Chunks, the most running at once, and when exports and loads ended (from Prefect)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read() -> tuple[Any, list[Any]]:
        async with get_client() as client:
            run = await client.read_flow_run(flow_run_id)
            tasks = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            return run, tasks

    run, tasks = asyncio.run(read())
    exports = [t for t in tasks if t.name.startswith("export-") and t.start_time and t.end_time]
    loads = [t for t in tasks if t.name.startswith("load-") and t.end_time]
    started = run.start_time
    return {
        "flow_run_id": flow_run_id,
        "flow_state": run.state_name,
        "chunks": len(exports),
        "chunks_at_once": most_at_once([(t.start_time, t.end_time) for t in exports]),
        "exports_done_s": max((t.end_time - started).total_seconds() for t in exports),
        "loads_done_s": max((t.end_time - started).total_seconds() for t in loads),
    }


def bigquery_counts(dataset: str) -> dict[str, int]:
    """Rows of each ph_* table in the benchmark dataset."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    client = bigquery.Client(project=PROJECT, credentials=AnonymousCredentials())
    return {
        table: next(
            iter(client.query(f"SELECT COUNT(*) AS n FROM `{PROJECT}.{dataset}.{table}`").result())
        )["n"]
        for table in FLOW_TABLES
    }


def measure_scale(scale: float, extra_env: dict[str, str]) -> dict[str, Any]:
    """Seed (or reuse) the dataset at ``scale``, sync it once, check the outcome."""
    from partyhelp_pipeline import manifest as mf

    marker = seed.ensure_flow(scale, log=log)
    database = seed.flow_database(scale)
    bucket = f"ph-scale-{secrets.token_hex(4)}"
    dataset = f"ph_scale_{secrets.token_hex(4)}"
    storage().create_bucket(bucket)
    try:
        # A sync from MySQL is today's snapshot: the test clock makes SYNC_DATE today.
        env = export_env(
            database,
            bucket,
            PARTYHELP_BQ_DATASET=dataset,
            PARTYHELP_CLOCK_DATE=SYNC_DATE,
            **extra_env,
        )
        log(
            f"scale {scale:g}: syncing {sum(marker['counts'][t] for t in SOURCE_TABLES.values()):,}"
            f" rows from {database}"
        )
        with RssSampler() as sampler:
            result = run_child([sys.executable, "-m", "flows.partyhelp_sync"], env, capture=False)
        manifest = mf.find_latest_manifest(
            storage(), bucket, PREFIX, dt.date.fromisoformat(SYNC_DATE), "ph_leads"
        )
        record = {
            "scale": scale,
            "env": extra_env,
            "source_counts": {
                table: marker["counts"][source] for table, source in SOURCE_TABLES.items()
            },
            "bigquery_counts": bigquery_counts(dataset),
            **task_timeline(manifest.flow_run_id or ""),
            **result,
            "rss_quartiles_mb": [round(sampler.at(f)) for f in (0.25, 0.5, 0.75, 1.0)],
            "rss_samples": sampler.samples,
        }
    finally:
        remove_bucket(bucket)
        drop_dataset(dataset)
    if record["bigquery_counts"] != record["source_counts"]:
        raise RuntimeError(
            f"scale {scale:g}: BigQuery {record['bigquery_counts']} "
            f"!= source {record['source_counts']}"
        )
    return record


def render(records: list[dict[str, Any]], info: dict[str, str], command: str) -> str:
    """Markdown: the machine, then one row per scale."""
    lines = [
        f"Run `{command}` on {info['date']}: {info['nproc']} CPUs ({info['cpu']}), "
        f"{info['memory']} RAM; MariaDB {info['mariadb']}; {info['project']}.",
        "",
        "| scale | x today | rows (5 tables) | lead_matches | credit_transactions | chunks "
        "| most at once | exports done | loads done | flow wall (process) | rows/s | peak RSS "
        "| RSS at 25/50/75/100 % of the run | BigQuery = source |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in records:
        rows = sum(r["source_counts"].values())
        lines.append(
            f"| {r['scale']:g} | {r['scale'] / 100:g} | {rows:,} | "
            f"{r['source_counts']['ph_lead_matches']:,} | "
            f"{r['source_counts']['ph_credit_transactions']:,} | {r['chunks']} | "
            f"{r['chunks_at_once']} | {r['exports_done_s']:.0f} s | {r['loads_done_s']:.0f} s | "
            f"{r['process_seconds']:.0f} s | {rows / r['process_seconds']:,.0f} | "
            f"{r['peak_rss_mb']:.0f} MB | "
            f"{' / '.join(str(mb) for mb in r['rss_quartiles_mb'])} MB | "
            f"{'yes' if r['bigquery_counts'] == r['source_counts'] else 'NO'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Seed, sync, report."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scale", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--scales",
        default="100,1000,10000",
        help="synthetic scales, comma-separated (100 = today's size)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra setting for the flow, e.g. PARTYHELP_MAX_WORKERS=4",
    )
    parser.add_argument("--no-doc", action="store_true", help="do not touch docs/BENCHMARKS.md")
    args = parser.parse_args(argv)
    scales = [float(s) for s in args.scales.split(",") if s]
    extra_env = dict(item.split("=", 1) for item in args.env)
    results = Results("scale")
    for scale in scales:
        record = measure_scale(scale, extra_env)
        results.keep(record)
        log(
            f"scale {scale:g}: {record['process_seconds']:.0f} s, "
            f"{record['peak_rss_mb']:.0f} MB, {record['chunks']} chunks "
            f"({record['chunks_at_once']} at once), BigQuery = source"
        )
    section = render(results.records, machine(), command_line("benchmarks.scale", argv))
    publish(section, results, not args.no_doc, BEGIN, END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
