"""Where the MariaDB server's time goes (issue 22): protocol, query shape, client, memory.

    .venv/bin/python -m benchmarks.server_cpu --rows 2000000 --repeat 3

needs the local stack and the ``ph_bench_lp_<rows>`` database (``benchmarks.seed``; 2M is
derived from 1M in seconds: ``python -m benchmarks.seed --purchases 2000000
--derive-from 1000000``). Every measurement runs in its own process through
``benchmarks.run.run_child`` (MySQL CPU: the server's CPU seconds meanwhile):

* protocol: the ph_lead_purchases query read by connectorx (dlt venv,
  ``benchmarks/cx_protocol.py``) with ``protocol=text`` and ``protocol=binary``;
* shape: ``mariadb --quick`` to /dev/null of the driving table's scan alone (raw columns),
  each join of the spec added in turn (raw columns), the whole query in wire form, and the
  export's own reads: its main query (lookups left to Arrow) and each lookup's query;
* memory: export-gcs and export-local (``benchmarks.paths``) as ``benchmarks.run`` measures
  them, then export-gcs once under ``benchmarks.memory_probe`` without and once with
  tracemalloc;
* profile: one export-local under py-spy, its samples grouped by stage (``--native`` also
  splits the driver's fetch by C function). py-spy lives in its own venv: ``python3 -m venv
  benchmarks/.work/tools && benchmarks/.work/tools/bin/pip install py-spy==0.4.3``.

Protocol and shape run interleaved, ``--repeat`` times in a rotated order; the tables
(medians) are printed as Markdown, the records appended to benchmarks/.work/server-cpu-*.jsonl.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import run, seed

TABLE = "ph_lead_purchases"
PY_SPY = run.WORK / "tools" / "bin" / "py-spy"
STAGES = (  # (stage, what a frame's text holds), the leaf-most matching frame decides
    ("compression", "compress_block"),
    ("avro encoding", "avro_encoding.py"),
    ("fetch (driver)", "MySQLdb/"),
    ("fetch (driver)", "pymysql/"),
    ("fetch (driver)", "stream_rows"),
    ("arrow conversion", "batches.py"),
    ("part files, checksum, upload", "parts.py"),
    ("part files, checksum, upload", "manifest.py"),
    ("prefetch queue", "pipelining.py"),
)


def shape_queries(first_id: int, last_id: int) -> dict[str, str]:
    """The spec's flattening query cut down: scan alone, each join added (raw columns), and
    the whole query in wire form (the export's)."""
    from partyhelp_pipeline.spec import TABLES
    from partyhelp_pipeline.spec.sql import lookup_query, mysql_source, quote

    spec = TABLES[TABLE]
    key = mysql_source(f"{spec.alias}.{spec.key_column}")
    tail = f"WHERE {key} BETWEEN {first_id} AND {last_id}\nORDER BY {key}"
    aliases = [spec.alias]
    clauses = [f"FROM {quote(spec.source_table)} AS {quote(spec.alias)}"]
    queries: dict[str, str] = {}
    steps = [(f"scan {spec.source_table} alone", None), *((f"+ {j.table}", j) for j in spec.joins)]
    for label, join in steps:
        if join is not None:
            aliases.append(join.alias)
            on = f"{mysql_source(f'{join.alias}.{join.key}')} = {mysql_source(join.parent)}"
            clauses.append(f"LEFT JOIN {quote(join.table)} AS {quote(join.alias)} ON {on}")
        columns = [
            mysql_source(c.source) for c in spec.query_plan if c.source.split(".")[0] in aliases
        ]
        queries[label + " (raw columns)"] = "\n".join(
            ["SELECT " + ", ".join(columns), *clauses, tail]
        )
    queries["whole query, wire form (every join in SQL)"] = run.source_query(
        TABLE, first_id, last_id
    )
    queries["the export's main query (lookups joined in Arrow)"] = run.source_query(
        TABLE, first_id, last_id, lookups_in_arrow=True
    )
    for lookup in spec.lookups:
        text = lookup_query(spec, lookup)
        sql = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
        queries[f"the export's {lookup.join.table} lookup (once per chunk)"] = sql
    return queries


def mariadb_command(database: str, sql: str) -> list[str]:
    """``mariadb --quick`` running ``sql`` (the floor's command, another query)."""
    cmd = run.floor_command(database, TABLE)
    cmd[-1] = "SET time_zone = '+00:00';\n" + sql
    return cmd


def protocol_command(database: str, protocol: str, sql: str, dlt_python: Path) -> list[str]:
    """connectorx reading ``sql`` over ``protocol`` in the dlt venv."""
    params = seed.admin_params()
    auth = params["user"] + (f":{params['password']}" if params["password"] else "")
    url = f"mysql://{auth}@{params['host']}:{params['port']}/{database}"
    script = str(run.ROOT / "benchmarks" / "cx_protocol.py")
    return [str(dlt_python), script, "--protocol", protocol, "--conn", url, "--query", sql]


def server_commands(rows: int, dlt_python: Path) -> dict[str, list[str]]:
    """Every protocol and shape measurement's command, by label."""
    database = seed.purchases_database(rows)
    low, high = run.id_range(database, "lead_purchases")
    whole = run.source_query(TABLE, low, high)
    commands = {
        f"connectorx protocol={p}": protocol_command(database, p, whole, dlt_python)
        for p in ("text", "binary")
    }
    for label, sql in shape_queries(low, high).items():
        commands[f"mariadb --quick: {label}"] = mariadb_command(database, sql)
    return commands


def measure_server(args: argparse.Namespace, results: run.Results) -> None:
    """The protocol and shape commands, interleaved, ``args.repeat`` times."""
    commands = server_commands(args.rows, run.ensure_dlt_venv())
    labels = list(commands)
    for rep in range(args.repeat):
        for label in labels[rep % len(labels) :] + labels[: rep % len(labels)]:
            result = run.run_child(commands[label], capture=label.startswith("connectorx"))
            if "rows" in result and result["rows"] != args.rows:
                raise RuntimeError(f"{label} read {result['rows']} rows, not {args.rows}")
            results.keep({"kind": "server", "rep": rep, "label": label, **result})
            run.log(
                f"rep {rep + 1} {label}: {result['seconds']:.1f} s, "
                f"MySQL CPU {run._fmt_cpu(result['mysql_cpu_seconds'])}"
            )


def measure_memory(args: argparse.Namespace, results: run.Results) -> None:
    """export-gcs and export-local as benchmarks.run measures them, ``args.repeat`` times,
    then the probes."""
    bucket = f"ph-bench-{secrets.token_hex(4)}"
    storage: Callable[[], Any] = run.storage  # run.storage is unannotated (strict mypy)
    storage().create_bucket(bucket)
    try:
        for rep in range(args.repeat):
            for path in ("export-gcs", "export-local"):
                result = run.measure(path, args.rows, bucket, Path())
                results.keep({"kind": "memory", "rep": rep, "label": path, **result})
                run.log(f"{path} rep {rep + 1}: {result['peak_rss_mb']:.0f} MB")
        env = run.export_env(seed.purchases_database(args.rows), bucket)
        for flags in ([], ["--tracemalloc"]):
            cmd = [sys.executable, "-m", "benchmarks.memory_probe", *flags]
            result = run.run_child(cmd, env)
            label = " ".join(["memory_probe", *flags])
            results.keep({"kind": "memory", "label": label, **result})
            run.empty_bucket(bucket)
    finally:
        run.remove_bucket(bucket)


WAITING = (".wait (", "Queue.get (", "Thread.join (", "_wait_for_tstate_lock (")


def stage_of(stack: str) -> str:
    """The stage of one py-spy stack (frames root to leaf, ';'-separated)."""
    if not stack:  # a thread sampled with no Python frame on its stack
        return "no Python frame"
    if "_find_and_load" in stack:
        return "imports (excluded)"
    if any(marker in stack.rsplit(";", 1)[-1] for marker in WAITING):
        return "waiting on a lock or queue (excluded)"
    for frame in reversed(stack.split(";")):
        for stage, marker in STAGES:
            if marker in frame:
                return stage
    return "other"


def read_samples(raw: Path) -> Counter[str]:
    """py-spy's raw output: samples per stack."""
    samples: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples[stack] += int(count)
    return samples


def fetch_breakdown(samples: Counter[str]) -> dict[str, float]:
    """With --native: the driver's fetch by the C function under ``_fetch_row``, in %."""
    below: Counter[str] = Counter()
    for stack, count in samples.items():
        if "_fetch_row" in stack:
            frames = stack[stack.index("_fetch_row") :].split(";")
            below[frames[3].split(" (")[0] if len(frames) > 3 else "(itself)"] += count
    total = sum(below.values()) or 1
    return {name: round(100 * n / total, 1) for name, n in below.most_common(8)}


def profile(args: argparse.Namespace, results: run.Results) -> None:
    """One export-local under py-spy; samples per stage and per leaf function."""
    database = seed.purchases_database(args.rows)
    out, raw = run.WORK / "out" / "profile", run.WORK / "profile.txt"
    export = [sys.executable, "-m", "benchmarks.paths", "export-local", "--out", str(out)]
    rate = "100" if args.native else "200"
    spy = [str(PY_SPY), "record", "-r", rate, "--format", "raw", "-o", str(raw)]
    spy += ["--native", "--"] if args.native else ["--"]
    result = run.run_child(spy + export, run.export_env(database, "unused"), capture=False)
    shutil.rmtree(out, ignore_errors=True)
    samples = read_samples(raw)
    stages: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for stack, count in samples.items():
        stages[stage_of(stack)] += count
        if not stage_of(stack).endswith("(excluded)"):
            leaves[stack.rsplit(";", 1)[-1]] += count
    total = sum(n for s, n in stages.items() if not s.endswith("(excluded)"))
    record = {
        "kind": "profile",
        "native": args.native,
        "seconds": result["process_seconds"],
        "samples": total,
        "stages": {
            s: round(100 * n / total, 1)
            for s, n in stages.most_common()
            if not s.endswith("(excluded)")
        },
        "excluded_samples": {s: n for s, n in stages.items() if s.endswith("(excluded)")},
        "leaves": {f: round(100 * n / total, 1) for f, n in leaves.most_common(12)},
        "fetch_breakdown": fetch_breakdown(samples) if args.native else None,
    }
    results.keep(record)
    print(json.dumps(record, indent=1))


def server_table(records: list[dict[str, Any]]) -> str:
    """Markdown: medians per label of wall, MySQL CPU and client CPU."""
    labels = list(dict.fromkeys(r["label"] for r in records))
    lines = ["| read | wall | MySQL CPU | client CPU |", "|---|---:|---:|---:|"]
    for label in labels:
        group = [r for r in records if r["label"] == label]
        walls = [r["seconds"] for r in group]
        lines.append(
            f"| {label} | {run._fmt_seconds(walls)} | "
            f"{run._fmt_cpu(run._median_of(group, 'mysql_cpu_seconds'))} | "
            f"{run._fmt_cpu(run._median_of(group, 'client_cpu_seconds'))} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen measurements; print their tables."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.server_cpu")
    parser.add_argument("what", nargs="*", default=["server", "memory", "profile"])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--native", action="store_true", help="profile: py-spy --native")
    args = parser.parse_args(argv)
    results = run.Results("server-cpu")
    if "server" in args.what:
        measure_server(args, results)
        print(server_table([r for r in results.records if r["kind"] == "server"]))
    if "memory" in args.what:
        measure_memory(args, results)
        print(json.dumps([r for r in results.records if r["kind"] == "memory"], indent=1))
    if "profile" in args.what:
        profile(args, results)
    run.log(f"raw results: {results.path.relative_to(run.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
