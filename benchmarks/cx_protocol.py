"""Read one query with connectorx over the text or the binary MySQL protocol (issue 22).

Runs in the dlt venv (benchmarks/.work/dlt-venv, see benchmarks/requirements.txt), imports
nothing from the project; ``benchmarks.server_cpu`` runs it in a child process:

    dlt-venv/bin/python benchmarks/cx_protocol.py --protocol text|binary --conn URL --query SQL

Record batches are streamed (``return_type="arrow_stream"``, as dlt-connectorx reads) and
dropped. The last line printed is JSON: seconds and cpu_seconds (the work, imports
excluded), rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main() -> int:
    """Stream the query's batches and print the JSON result."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--protocol", choices=("text", "binary"), required=True)
    parser.add_argument("--conn", required=True)
    parser.add_argument("--query", required=True)
    args = parser.parse_args()
    import connectorx as cx  # type: ignore[import-not-found]  # in the dlt venv only

    started, cpu_started = time.perf_counter(), time.process_time()
    reader = cx.read_sql(
        args.conn,
        args.query,
        protocol=args.protocol,
        return_type="arrow_stream",
        pre_execution_query="SET time_zone = '+00:00'",
    )
    rows = sum(batch.num_rows for batch in reader)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "rows": rows}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
