"""The run's first step: what must hold before MySQL is read (issue 10, section 5)."""

from __future__ import annotations

from prefect import task

from partyhelp_pipeline import preflight
from partyhelp_pipeline.errors import PreflightError
from tasks.options import RETRY_OPTIONS, runtime_settings


@task(name="preflight", **RETRY_OPTIONS)
def cheap_checks() -> None:
    """Fail in one line when the bucket is missing or cannot serve the dataset's location."""
    settings = runtime_settings()
    failed = [result for result in preflight.cheap_checks(settings) if not result.ok
              # fake-gcs-server puts every bucket in one location, whatever was asked
              and not (settings.uses_emulators and result.name == "location")]
    if failed:
        raise PreflightError("; ".join(f"{r.name}: {r.detail}" for r in failed))
