"""The peer: dlt's ``sql_table`` reading the same query into local Parquet files.

Runs in the dlt venv (benchmarks/.work/dlt-venv, see benchmarks/requirements.txt), not in
the project's .venv, and imports nothing from the project:

    dlt-venv/bin/python benchmarks/dlt_peer.py --backend pyarrow|connectorx \\
        --database DB --view bench_ph_lead_purchases --out DIR

``benchmarks.run`` creates the view (the project's flattening query with the id range
filled in) so that ``sql_table`` reads exactly the rows the export reads. pyarrow goes
through SQLAlchemy with mysqlclient (the faster driver); connectorx streams Arrow record
batches (``return_type="arrow_stream"``), else it would hold the whole result. Everything
else is dlt's default. The last line printed is JSON: seconds and cpu_seconds (the work,
imports excluded; CPU of every thread of the process), rows, files, bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _parquet_files(folder: str) -> tuple[int, int]:
    """How many Parquet files dlt wrote under ``folder``, and their bytes."""
    files, size = 0, 0
    for root, _dirs, names in os.walk(folder):
        for name in names:
            if name.endswith(".parquet"):
                files += 1
                size += os.path.getsize(os.path.join(root, name))
    return files, size


def main() -> int:
    """Run one dlt pipeline and print its JSON result."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=("pyarrow", "connectorx"), required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--view", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3306)
    parser.add_argument("--user", default="root")
    parser.add_argument("--password", default="")
    args = parser.parse_args()
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("DLT_DATA_DIR", os.path.join(args.out, "_dlt_data"))

    import dlt
    from dlt.sources.sql_database import sql_table

    auth = args.user + (f":{args.password}" if args.password else "")
    started, cpu_started = time.perf_counter(), time.process_time()
    if args.backend == "pyarrow":
        credentials = f"mysql+mysqldb://{auth}@{args.host}:{args.port}/{args.database}"
        resource = sql_table(
            credentials=credentials, table=args.view, backend="pyarrow", reflection_level="full"
        )
    else:
        credentials = f"mysql+pymysql://{auth}@{args.host}:{args.port}/{args.database}"
        connection = f"mysql://{auth}@{args.host}:{args.port}/{args.database}"
        resource = sql_table(
            credentials=credentials,
            table=args.view,
            backend="connectorx",
            reflection_level="full",
            backend_kwargs={"conn": connection, "return_type": "arrow_stream"},
        )
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{args.backend}",
        pipelines_dir=os.path.join(args.out, "_pipelines"),
        destination=dlt.destinations.filesystem(
            bucket_url="file://" + os.path.abspath(os.path.join(args.out, "data"))
        ),
        dataset_name="bench",
    )
    info = pipeline.run(resource, loader_file_format="parquet")
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    rows = pipeline.last_trace.last_normalize_info.row_counts.get(args.view, 0)
    files, size = _parquet_files(os.path.join(args.out, "data"))
    if info.has_failed_jobs:
        raise SystemExit("dlt: failed jobs")
    print(
        json.dumps(
            {"seconds": seconds, "cpu_seconds": cpu, "rows": rows, "files": files, "bytes": size}
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
