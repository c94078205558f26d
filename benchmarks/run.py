"""The export against the MySQL floor and against dlt, at several sizes, in one run.

    .venv/bin/python -m benchmarks.run --sizes 200000,2000000,10000000 --repeat 3

needs the local stack (``eval "$(scripts/stack.sh env)"``; ``scripts/stack.sh start``).
For each size (rows of ``ph_lead_purchases``) it seeds a database once with the synthetic
generator (``benchmarks.seed``; reused on later runs), then measures, interleaved (every
repetition runs every path at every size, in a rotated order), each in its own process:

==============  ==================================================================
floor           ``mariadb --quick -e "<the ph_lead_purchases query>" > /dev/null``
export-local    the project's export (``partyhelp_pipeline.export``) into a local folder
export-gcs      the same, uploading to fake-gcs-server, manifest included; the chunks of
                a table above PARTYHELP_CHUNK_ROWS (5M) run concurrently, as in the flow
export-gcs-serial  only for those: the same with one chunk at a time (memory of one)
dlt-pyarrow     dlt ``sql_table`` (pyarrow backend, mysqlclient) -> local Parquet
dlt-connectorx  dlt ``sql_table`` (connectorx, Arrow stream) -> local Parquet
==============  ==================================================================

Wall is the work itself, measured inside the process (interpreter start and imports
excluded; the floor's is the whole ``mariadb`` process, which starts in milliseconds);
"process" is the whole child process. Peak RSS is the child's ``ru_maxrss`` from ``wait4``
in a bare launcher process (``benchmarks/launch.py``).
Then (unless ``--flow-scale 0``) a whole-flow sync of the full synthetic dataset at
``--flow-scale`` (~10M rows in the five tables at 970) runs through the emulators, next to
the five tables' floors. The table is printed and written into docs/BENCHMARKS.md;
every measurement is appended to benchmarks/.work/results-*.jsonl.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import seed

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work"
DLT_VENV = WORK / "dlt-venv"
DOC = ROOT / "docs" / "BENCHMARKS.md"
BEGIN, END = "<!-- BEGIN RESULTS (benchmarks/run.py) -->", "<!-- END RESULTS -->"
PATHS = (
    "floor",
    "export-local",
    "export-gcs",
    "export-gcs-serial",
    "dlt-pyarrow",
    "dlt-connectorx",
)
DEFAULT_CHUNK_ROWS = 5_000_000  # PARTYHELP_CHUNK_ROWS' default
VIEW = "bench_ph_lead_purchases"
SYNC_DATE = "2026-11-25"
PROJECT = "partyhelp-bench"  # the emulators' project of the benchmark's buckets and datasets
FLOW_TABLES = (
    "ph_leads",
    "ph_venues",
    "ph_lead_purchases",
    "ph_credit_transactions",
    "ph_lead_matches",
)


def log(message: str) -> None:
    """Progress on stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ child processes


def listening_pid(port: int) -> int | None:
    """The process listening on TCP ``port`` of this machine (from /proc), or None when it
    is not visible (another namespace, another user's process)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    for process in Path("/proc").iterdir():
        if not process.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (process / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return int(process.name)
    return None


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds a process has used so far (``/proc/<pid>/stat``)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def services() -> dict[str, int | None]:
    """The local MariaDB's and fake-gcs-server's processes, whose CPU each path is charged."""
    gcs = os.environ.get("STORAGE_EMULATOR_HOST", "http://127.0.0.1:4443")
    return {
        "mysql": listening_pid(int(seed.admin_params()["port"])),
        "gcs": listening_pid(int(gcs.rsplit(":", 1)[1].strip("/"))),
    }


def run_child(
    cmd: list[str], env: dict[str, str] | None = None, capture: bool = True
) -> dict[str, Any]:
    """Run ``cmd``; return its JSON result (last stdout line), process wall, peak RSS, its CPU
    seconds, and the CPU seconds MariaDB and fake-gcs-server spent meanwhile."""
    WORK.mkdir(parents=True, exist_ok=True)
    rss_file = WORK / f"rss-{os.getpid()}.json"
    launcher = [sys.executable, "-S", str(ROOT / "benchmarks" / "launch.py"), str(rss_file)]
    pids = services()
    with open(WORK / "children.log", "ab") as errors:
        errors.write(f"\n$ {' '.join(cmd)[:300]}\n".encode())
        errors.flush()
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        started = time.perf_counter()
        proc = subprocess.run(
            launcher + cmd,
            env=env,
            stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
            stderr=errors,
            cwd=ROOT,
            check=False,
        )
        wall = time.perf_counter() - started
        cpu_after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} ... exited {proc.returncode}; see {WORK / 'children.log'}")
    result: dict[str, Any] = {}
    lines = (proc.stdout or b"").decode().strip().splitlines()
    if capture and lines:
        result = json.loads(lines[-1])
    result["process_seconds"] = wall
    result.setdefault("seconds", wall)
    usage = json.loads(rss_file.read_text())
    result["peak_rss_mb"] = usage["peak_rss_kib"] / 1024
    result["process_cpu_seconds"] = usage["user_seconds"] + usage["system_seconds"]
    # The work's own CPU when the child measured it (imports excluded, as its wall).
    result["client_cpu_seconds"] = result.get("cpu_seconds", result["process_cpu_seconds"])
    for name in pids:
        before, after = cpu_before[name], cpu_after[name]
        result[f"{name}_cpu_seconds"] = None if before is None or after is None else after - before
    rss_file.unlink()
    return result


def source_query(table: str, first_id: int, last_id: int, lookups_in_arrow: bool = False) -> str:
    """The project's flattening query of ``table`` with its parameters filled in: by default
    with every join in SQL (every column of the table: what the floor and dlt read); with
    ``lookups_in_arrow`` the export's own main query, whose lookups it joins in Arrow."""
    from partyhelp_pipeline.spec import TABLES
    from partyhelp_pipeline.spec.sql import flattening_query

    query = flattening_query(TABLES[table], lookups_in_arrow=lookups_in_arrow)
    lines = query.splitlines()
    sql = "\n".join(line for line in lines if not line.lstrip().startswith("--"))
    return (
        sql.replace("%(first_id)s", str(first_id))
        .replace("%(last_id)s", str(last_id))
        .replace("%(include_pii)s", "0")
    )


def id_range(database: str, source_table: str) -> tuple[int, int]:
    """MIN and MAX id of a table."""
    with seed._connect(database) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT MIN(id), MAX(id) FROM `{source_table}`")
        low, high = cur.fetchone()
    return int(low or 0), int(high or -1)


def floor_command(database: str, table: str) -> list[str]:
    """``mariadb --quick -e "<query>"`` for the whole table."""
    from partyhelp_pipeline.spec import TABLES

    low, high = id_range(database, TABLES[table].source_table)
    params = seed.admin_params()
    cmd = [
        "mariadb",
        "--quick",
        f"--host={params['host']}",
        f"--port={params['port']}",
        f"--user={params['user']}",
        database,
        "-e",
        "SET time_zone = '+00:00';\n" + source_query(table, low, high),
    ]
    if params["password"]:
        cmd.insert(-2, f"--password={params['password']}")
    return cmd


def export_env(database: str, bucket: str, **extra: str) -> dict[str, str]:
    """Environment of the project's export (and flow) against ``database``."""
    params = seed.admin_params()
    env = dict(os.environ)
    env.update(
        {
            "PARTYHELP_MYSQL_HOST": params["host"],
            "PARTYHELP_MYSQL_PORT": str(params["port"]),
            "PARTYHELP_MYSQL_USER": params["user"],
            "PARTYHELP_MYSQL_PASSWORD": params["password"],
            "PARTYHELP_MYSQL_DATABASE": database,
            "PARTYHELP_GCS_BUCKET": bucket,
            "PARTYHELP_GCS_PREFIX": "bench",
            "PARTYHELP_BQ_PROJECT": PROJECT,
            "PARTYHELP_BQ_LOCATION": "US",
        }
    )
    env.update(extra)
    return env


def ensure_dlt_venv() -> Path:
    """benchmarks/.work/dlt-venv with benchmarks/requirements.txt, created on first use."""
    python = DLT_VENV / "bin" / "python"
    stamp = DLT_VENV / ".requirements"
    wanted = (ROOT / "benchmarks" / "requirements.txt").read_text()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    log(f"creating {DLT_VENV} (dlt, connectorx)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(DLT_VENV)], check=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "-r",
            str(ROOT / "benchmarks" / "requirements.txt"),
        ],
        check=True,
    )
    stamp.write_text(wanted)
    return python


def storage():
    """A fake-gcs-server client."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage as gcs

    return gcs.Client(project=PROJECT, credentials=AnonymousCredentials())


def empty_bucket(bucket: str) -> None:
    """Delete every object of ``bucket`` (between measurements, to keep the disk small)."""
    client = storage()
    for blob in client.list_blobs(bucket):
        blob.delete()


def remove_bucket(bucket: str) -> None:
    """Delete ``bucket`` and its objects."""
    empty_bucket(bucket)
    storage().bucket(bucket).delete()


def drop_dataset(dataset: str) -> None:
    """Drop a benchmark dataset from the BigQuery emulator, if it lets us."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    try:
        bigquery.Client(project=PROJECT, credentials=AnonymousCredentials()).delete_dataset(
            dataset, delete_contents=True, not_found_ok=True
        )
    except Exception as exc:  # the emulator may be slow to drop; the numbers stand
        log(f"could not drop dataset {dataset}: {exc}")


# ------------------------------------------------------------------ measurements


def measure(path: str, rows: int, bucket: str, dlt_python: Path) -> dict[str, Any]:
    """One measurement of ``path`` on the database of ``rows`` purchases."""
    database = seed.purchases_database(rows)
    out = WORK / "out" / f"{path}-{rows}"
    shutil.rmtree(out, ignore_errors=True)
    try:
        if path == "floor":
            return run_child(floor_command(database, "ph_lead_purchases"), capture=False)
        if path.startswith("export-"):
            kind = path.removesuffix("-serial")
            cmd = [
                sys.executable,
                "-m",
                "benchmarks.paths",
                kind,
                "--table",
                "ph_lead_purchases",
            ] + (["--out", str(out)] if kind == "export-local" else [])
            serial = {"PARTYHELP_MAX_WORKERS": "1"} if path.endswith("-serial") else {}
            return run_child(cmd, export_env(database, bucket, **serial))
        backend = path.removeprefix("dlt-")
        params = seed.admin_params()
        cmd = [
            str(dlt_python),
            str(ROOT / "benchmarks" / "dlt_peer.py"),
            "--backend",
            backend,
            "--database",
            database,
            "--view",
            VIEW,
            "--out",
            str(out),
            "--host",
            params["host"],
            "--port",
            str(params["port"]),
            "--user",
            params["user"],
            "--password",
            params["password"],
        ]
        return run_child(cmd)
    finally:
        shutil.rmtree(out, ignore_errors=True)
        if path == "export-gcs":
            empty_bucket(bucket)


def create_view(rows: int) -> None:
    """The view dlt reads: the export's query over the same id range."""
    database = seed.purchases_database(rows)
    low, high = id_range(database, "lead_purchases")
    with seed._connect(database) as conn, conn.cursor() as cur:
        cur.execute(
            f"CREATE OR REPLACE VIEW `{VIEW}` AS " + source_query("ph_lead_purchases", low, high)
        )


def measure_flow(scale: float, bucket: str) -> list[dict[str, Any]]:
    """The five floors of the flow database, then one whole-flow sync through the emulators."""
    database = seed.flow_database(scale)
    records = []
    floors = 0.0
    for table in FLOW_TABLES:
        result = run_child(floor_command(database, table), capture=False)
        floors += result["seconds"]
        records.append({"path": f"floor:{table}", **result})
    dataset = f"ph_bench_{secrets.token_hex(4)}"
    # A sync from MySQL is today's snapshot: the test clock makes SYNC_DATE today.
    env = export_env(database, bucket, PARTYHELP_BQ_DATASET=dataset, PARTYHELP_CLOCK_DATE=SYNC_DATE)
    result = run_child([sys.executable, "-m", "flows.partyhelp_sync"], env, capture=False)
    records.append({"path": "flow", "floors_seconds": floors, "dataset": dataset, **result})
    empty_bucket(bucket)
    drop_dataset(dataset)
    return records


# ------------------------------------------------------------------ report


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    info = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
    }
    meminfo = Path("/proc/meminfo").read_text()
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", meminfo)[1])
    info["memory"] = f"{mem_kib / 1024**2:.1f} GiB"
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    info["cpu"] = cpu[1].strip() if cpu else platform.processor()
    info["kernel"] = platform.release()
    info["python"] = platform.python_version()
    with seed._connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT VERSION(), @@innodb_buffer_pool_size")
        version, pool = cur.fetchone()
    info["mariadb"] = f"{version} (innodb_buffer_pool_size {int(pool) // 2**20} MiB)"
    from importlib.metadata import version as v

    info["project"] = ", ".join(
        f"{p} {v(p)}"
        for p in ("pyarrow", "numpy", "mysqlclient", "google-cloud-storage", "prefect")
    )
    try:
        peer = subprocess.run(
            [
                str(DLT_VENV / "bin" / "python"),
                "-c",
                "from importlib.metadata import version as v;"
                "print(', '.join(f'{p} {v(p)}' for p in ('dlt','connectorx','pyarrow')))",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except Exception:
        peer = "?"
    info["peer"] = peer
    return info


def _fmt_seconds(values: list[float]) -> str:
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:.1f} s"
    return f"{median:.1f} s ({min(values):.1f}-{max(values):.1f})"


def _median_of(group: list[dict[str, Any]], key: str) -> float | None:
    """The median of ``key`` over the records that measured it."""
    values = [r[key] for r in group if r.get(key) is not None]
    return statistics.median(values) if values else None


def _fmt_cpu(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f} s"


def _path_row(size: int, path: str, group: list[dict[str, Any]], floor_median: float | None) -> str:
    """One table row: medians of the repetitions of ``path`` at ``size``."""
    walls = [r["seconds"] for r in group]
    median = statistics.median(walls)
    ratio = f"{median / floor_median:.2f}" if floor_median else "-"
    client = _median_of(group, "client_cpu_seconds")
    per_row = f"{client * 1e6 / size:.2f}" if client is not None else "-"
    gcs = _median_of(group, "gcs_cpu_seconds") if path.startswith("export-gcs") else None
    return (
        f"| {size:,} | {path} | {_fmt_seconds(walls)} | "
        f"{statistics.median(r['process_seconds'] for r in group):.1f} s | "
        f"{size / median:,.0f} | {_fmt_cpu(client)} | {per_row} | "
        f"{_fmt_cpu(_median_of(group, 'mysql_cpu_seconds'))} | {_fmt_cpu(gcs)} | "
        f"{max(r['peak_rss_mb'] for r in group):.0f} MB | {ratio} |"
    )


def render(records: list[dict[str, Any]], info: dict[str, str], repeat: int, command: str) -> str:
    """Markdown: the machine, then one table row per size and path."""
    by: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if "rows_target" in record:
            by[(record["rows_target"], record["path"])].append(record)
    lines = [
        f"Run `{command}` on {info['date']}.",
        "",
        f"- machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory']} RAM, "
        f"Linux {info['kernel']}",
        f"- MariaDB {info['mariadb']} on loopback; Python {info['python']}",
        f"- project: {info['project']}",
        f"- peer: {info['peer']}",
        "",
        f"Medians of {repeat} interleaved repetitions (min-max in brackets). Wall is the work "
        "inside the process; process adds interpreter start and imports. Peak RSS is the "
        "largest of the repetitions.",
        "",
        "Client CPU is the work's user + system CPU inside the path's process (every "
        "thread; imports excluded, as from wall; for the floor the whole `mariadb` client), "
        "µs/row is that CPU per row. MySQL CPU is what the MariaDB server "
        "spent during the path, fake-gcs CPU what the GCS emulator spent (export-gcs only; "
        "in production GCS is remote). Both servers are shared: other clients' work during "
        "a path is counted too, so their medians, not single values, are the signal.",
        "",
        "| rows | path | wall | process | rows/s | client CPU | µs/row | MySQL CPU "
        "| fake-gcs CPU | peak RSS | x floor |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in sorted({k[0] for k in by}):
        floor = by.get((size, "floor"))
        floor_median = statistics.median(r["seconds"] for r in floor) if floor else None
        for path in PATHS:
            group = by.get((size, path))
            if not group:
                continue
            lines.append(_path_row(size, path, group, floor_median))
    lines += _flow_lines([r for r in records if r["path"] == "flow"])
    return "\n".join(lines) + "\n"


def _flow_lines(flows: list[dict[str, Any]]) -> list[str]:
    """The whole-flow runs' table (none: no lines)."""
    if not flows:
        return []
    lines: list[str] = []
    scale = flows[0]["scale"]
    counts = flows[0]["counts"]
    five = ("leads", "venues", "lead_purchases", "credit_transactions", "lead_matches")
    total = sum(counts[t] for t in five)
    lines += [
        "",
        f"Whole-flow sync (`python -m flows.partyhelp_sync`, default thread runner, "
        f"Prefect server, fake-gcs-server, BigQuery emulator) of the synthetic dataset at "
        f"scale {scale:g}: {total:,} rows in the five tables "
        f"({', '.join(f'{t} {counts[t]:,}' for t in five)}).",
        "",
        "| run | flow wall (process) | sum of the five floors | x floors | peak RSS |",
        "|---:|---:|---:|---:|---:|",
    ]
    for i, r in enumerate(flows, 1):
        lines.append(
            f"| {i} | {r['process_seconds']:.1f} s | {r['floors_seconds']:.1f} s | "
            f"{r['process_seconds'] / r['floors_seconds']:.2f} | "
            f"{r['peak_rss_mb']:.0f} MB |"
        )
    return lines


def write_doc(section: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace the section between ``begin`` and ``end`` of docs/BENCHMARKS.md (the file, or
    the section at its end, created if missing)."""
    text = DOC.read_text() if DOC.exists() else f"# Benchmarks\n\n{begin}\n{end}\n"
    if begin not in text:
        text += f"\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1] if end in rest else ""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(f"{head}{begin}\n{section}{end}{tail}")


class Results:
    """The records of one run, each appended as it comes to benchmarks/.work/<kind>-*.jsonl
    (what was measured stays on disk even if a later measurement fails)."""

    def __init__(self, kind: str) -> None:
        self.path = WORK / f"{kind}-{dt.datetime.now():%Y%m%dT%H%M%S}.jsonl"
        self.records: list[dict[str, Any]] = []

    def keep(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(record, default=str) + "\n")


def command_line(module: str, argv: list[str] | None) -> str:
    """The command as it was run, for the report."""
    return f"python -m {module} " + " ".join(sys.argv[1:] if argv is None else argv)


def publish(
    section: str, results: Results, to_doc: bool, begin: str = BEGIN, end: str = END
) -> None:
    """Print the report, write it into docs/BENCHMARKS.md unless told not to, and say where
    the raw records are."""
    print(section)
    if to_doc:
        write_doc(section, begin, end)
        log(f"wrote {DOC.relative_to(ROOT)}")
    log(f"raw results: {results.path.relative_to(ROOT)}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line, with ``sizes`` and ``paths`` as lists."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--sizes",
        default="200000,2000000,10000000",
        help="rows of ph_lead_purchases, comma-separated",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--paths", default=",".join(PATHS), help=f"subset of {','.join(PATHS)}")
    parser.add_argument(
        "--flow-scale",
        type=float,
        default=970.0,
        help="synthetic scale of the whole-flow dataset; 0 skips the flow",
    )
    parser.add_argument("--flow-repeat", type=int, default=1)
    parser.add_argument(
        "--derive-from",
        type=int,
        default=None,
        metavar="ROWS",
        help="build each larger size that is a multiple of ROWS from the ROWS "
        "database (minutes, not the generator's hour; seed.derive_purchases)",
    )
    parser.add_argument("--reseed", action="store_true", help="seed again even if reusable")
    parser.add_argument("--no-doc", action="store_true", help="do not touch docs/BENCHMARKS.md")
    args = parser.parse_args(argv)
    args.sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s]
    args.paths = [p for p in args.paths.split(",") if p]
    unknown = set(args.paths) - set(PATHS)
    if unknown:
        parser.error(f"unknown paths {sorted(unknown)}")
    return args


def seed_databases(args: argparse.Namespace) -> dict[str, Any] | None:
    """The purchases database (and dlt's view) of every size, and the whole-flow database;
    returns the latter's marker, None when the flow is skipped."""
    for size in args.sizes:
        seed.ensure_size(size, args.derive_from, log=log, reseed=args.reseed)
        create_view(size)
    if not args.flow_scale:
        return None
    return seed.ensure_flow(args.flow_scale, log=log, reseed=args.reseed)


def measure_paths(
    args: argparse.Namespace, bucket: str, dlt_python: Path, keep: Callable[[dict[str, Any]], None]
) -> None:
    """Every path at every size, ``args.repeat`` times, interleaved in a rotated order."""
    paths = args.paths
    for rep in range(args.repeat):
        for size in args.sizes:
            for path in paths[rep % len(paths) :] + paths[: rep % len(paths)]:
                if path.endswith("-serial") and size <= DEFAULT_CHUNK_ROWS:
                    continue  # one chunk: the same as export-gcs
                result = measure(path, size, bucket, dlt_python)
                if "rows" in result and result["rows"] != size:
                    raise RuntimeError(f"{path} wrote {result['rows']} rows, not {size}")
                keep({"rep": rep, "rows_target": size, "path": path, **result})
                log(
                    f"rep {rep + 1}/{args.repeat} {size:>11,} {path:<15} "
                    f"{result['seconds']:7.1f} s  {result['peak_rss_mb']:5.0f} MB  client CPU "
                    f"{result['client_cpu_seconds']:.1f} s, MySQL CPU "
                    f"{_fmt_cpu(result['mysql_cpu_seconds'])}, fake-gcs CPU "
                    f"{_fmt_cpu(result['gcs_cpu_seconds'])}"
                )


def measure_flows(
    args: argparse.Namespace,
    marker: dict[str, Any],
    bucket: str,
    keep: Callable[[dict[str, Any]], None],
) -> None:
    """The whole-flow sync, ``args.flow_repeat`` times; a failed sync ends the series and
    keeps the measurements taken so far."""
    for rep in range(args.flow_repeat):
        try:
            flow_records = measure_flow(args.flow_scale, bucket)
        except RuntimeError as exc:
            log(f"whole-flow sync failed: {exc}")
            return
        for record in flow_records:
            keep({"rep": rep, "scale": args.flow_scale, "counts": marker["counts"], **record})
            log(
                f"flow rep {rep + 1}: {record['path']} "
                f"{record['process_seconds']:.1f} s {record['peak_rss_mb']:.0f} MB"
            )


def main(argv: list[str] | None = None) -> int:
    """Seed, measure, report."""
    args = parse_args(argv)
    dlt_python = ensure_dlt_venv() if any(p.startswith("dlt-") for p in args.paths) else Path()
    flow_marker = seed_databases(args)
    bucket = f"ph-bench-{secrets.token_hex(4)}"
    storage().create_bucket(bucket)
    results = Results("results")
    try:
        measure_paths(args, bucket, dlt_python, results.keep)
        if flow_marker:
            measure_flows(args, flow_marker, bucket, results.keep)
    finally:
        try:
            remove_bucket(bucket)
        except Exception as exc:
            log(f"could not remove bucket {bucket}: {exc}")
    section = render(results.records, machine(), args.repeat, command_line("benchmarks.run", argv))
    publish(section, results, not args.no_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
