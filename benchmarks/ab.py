"""The export at several commits, interleaved: what each change did, on the same machine.

    .venv/bin/python -m benchmarks.ab --commits e98d5e0,HEAD --rows 2000000 --repeat 3

needs the local stack and the ``ph_bench_lp_<rows>`` database (``benchmarks.run`` seeds it).
Each commit is checked out once into ``benchmarks/.work/ab/<sha>`` (a ``git worktree``) and
its own ``benchmarks/paths.py export-gcs`` runs with that tree first on ``PYTHONPATH``, in this
checkout's venv, through ``benchmarks.run.run_child`` (so the figures are those of
``benchmarks.run``: wall and client CPU inside the process, MySQL and fake-gcs-server CPU
meanwhile, peak RSS). The commits run in a rotated order at every repetition; the table of
medians is printed as Markdown, the records appended to benchmarks/.work/ab-*.jsonl.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks import run, seed

TREES = run.WORK / "ab"
TABLE = "ph_lead_purchases"


def worktree(commit: str) -> tuple[str, Path]:
    """The commit's short sha and a worktree of it (made once)."""
    sha = (
        subprocess.run(
            ["git", "rev-parse", "--short", commit], cwd=run.ROOT, check=True, capture_output=True
        )
        .stdout.decode()
        .strip()
    )
    tree = TREES / sha
    if not tree.exists():
        TREES.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), sha], cwd=run.ROOT, check=True
        )
    return sha, tree


def measure(tree: Path, rows: int, bucket: str) -> dict[str, Any]:
    """One export-gcs of ``rows`` purchases with the code of ``tree``."""
    env = run.export_env(seed.purchases_database(rows), bucket, PYTHONPATH=str(tree))
    # The tree's script, not ``-m``: ``-m`` would put this checkout (the cwd) first on the path.
    command = [
        sys.executable,
        str(tree / "benchmarks" / "paths.py"),
        "export-gcs",
        "--table",
        TABLE,
    ]
    try:
        return run.run_child(command, env)
    finally:
        run.empty_bucket(bucket)


COLUMNS = (
    ("wall", "seconds", "{:.1f} s"),
    ("client CPU", "client_cpu_seconds", "{:.1f} s"),
    ("MySQL CPU", "mysql_cpu_seconds", "{:.1f} s"),
    ("fake-gcs CPU", "gcs_cpu_seconds", "{:.1f} s"),
    ("peak RSS", "peak_rss_mb", "{:.0f} MB"),
)


def table(records: list[dict[str, Any]], shas: list[str]) -> str:
    """Medians per commit (min-max of the wall in brackets), as Markdown."""
    head = "| commit | " + " | ".join(label for label, _, _ in COLUMNS) + " |"
    lines = [head, "|---|" + "---:|" * len(COLUMNS)]
    for sha in shas:
        group = [r for r in records if r["commit"] == sha]
        cells = []
        for _, key, form in COLUMNS:
            values = [r[key] for r in group if r.get(key) is not None]
            cells.append(form.format(statistics.median(values)) if values else "-")
        walls = [r["seconds"] for r in group]
        cells[0] += f" ({min(walls):.1f}-{max(walls):.1f})"
        lines.append(f"| `{sha}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure every commit ``--repeat`` times, interleaved, and print the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab")
    parser.add_argument("--commits", required=True, help="comma-separated, e.g. e98d5e0,HEAD")
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    trees = [worktree(c) for c in args.commits.split(",")]
    results = run.Results("ab")
    bucket = f"ph-bench-ab-{secrets.token_hex(3)}"
    run.storage().create_bucket(bucket)
    records: list[dict[str, Any]] = []
    try:
        for rep in range(args.repeat):
            for sha, tree in trees[rep % len(trees) :] + trees[: rep % len(trees)]:
                record = {"commit": sha, "rep": rep, **measure(tree, args.rows, bucket)}
                results.keep(record)
                records.append(record)
                run.log(f"rep {rep + 1} {sha}: {record['seconds']:.1f} s")
    finally:
        run.remove_bucket(bucket)
    print(table(records, [sha for sha, _ in trees]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
