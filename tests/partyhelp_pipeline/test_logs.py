"""Outside a flow run the package never imports Prefect only to learn that it is not in one
(Prefect costs the export ~40 MB: docs/BENCHMARKS.md, issue 22)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

PROBE = """
import json, sys
from partyhelp_pipeline import logs, progress, source
logger = logs.get_logger()
source.announce_driver("mysqlclient")
artifact = progress.create_progress_artifact(logger, "export-x", "x")
print(json.dumps({
    "logger": logger.name,
    "artifact": artifact,
    "prefect": sorted(m for m in sys.modules if m.split(".")[0] == "prefect"),
}))
"""


def test_the_logger_the_driver_line_and_progress_do_not_import_prefect_outside_a_run() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True
    )
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"logger": "partyhelp_sync", "artifact": None, "prefect": []}


def test_inside_a_run_the_logger_is_prefects() -> None:
    from prefect import flow

    from partyhelp_pipeline.logs import get_logger, prefect_loaded

    @flow
    def which_logger() -> str:
        return type(get_logger()).__name__

    assert prefect_loaded()
    assert which_logger() == "PrefectLogAdapter"
