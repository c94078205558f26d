"""The run's first step: what must hold before MySQL is read (issue 10, section 5; issue 19,
section 1: BigQuery and GCS answer, or the run fails at once, naming the one that does not)."""

from __future__ import annotations

from prefect import task

from partyhelp_pipeline import preflight
from partyhelp_pipeline.errors import PreflightError
from tasks.options import RETRY_OPTIONS, runtime_settings


@task(name="preflight", **RETRY_OPTIONS)
def cheap_checks() -> None:
    """Fail in one line when GCS or BigQuery does not answer within its window (the one
    sentence of ``ServiceUnreachableError``, not retried: ``tasks.options``), or when the
    bucket is missing or cannot serve the dataset's location."""
    settings = runtime_settings()
    results = preflight.cheap_checks(settings)
    down = next((result.unreachable for result in results if result.unreachable), None)
    if down is not None:
        raise down
    failed = [
        result
        for result in results
        if not result.ok
        # fake-gcs-server puts every bucket in one location, whatever was asked
        and not (settings.uses_emulators and result.name == "location")
    ]
    if failed:
        raise PreflightError("; ".join(f"{r.name}: {r.detail}" for r in failed))
