"""The deploy check: ``prefect deploy`` runs it (a build step of ``prefect.yaml``), so that a
deployment whose settings Variable would fail its runs is refused, naming each problem."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from partyhelp_pipeline.settings.loading import load_settings
from partyhelp_pipeline.settings.rules import BLOCK_NAME, ConfigError
from partyhelp_pipeline.settings.sources import SETUP_HINT, read_settings_variable

# A Cloud Run job outlives the flow's own timeout by this much, so the flow ends TimedOut.
JOB_TIMEOUT_MARGIN_SECONDS = 300
_BLOCK_KINDS = {"PARTYHELP_GCP_CREDENTIALS_BLOCK": "gcp-credentials"}


def check_deployment_settings(
    variable: str, job_timeout_seconds: int | None = None
) -> dict[str, Any]:
    """A ``prefect.yaml`` deployment step: the Variable ``variable`` holds every setting a
    run needs, valid, and the Secret blocks it names exist; else ``prefect deploy`` fails
    naming each problem. With ``job_timeout_seconds`` (a Cloud Run job's), the flow's
    timeout must end the run first, so that it ends TimedOut (which alerts), not killed."""
    values = read_settings_variable(variable)  # now, not a cached copy
    problems = [
        f"{name} names no {kind} block"
        for name, kind, block in _named_blocks(values)
        if not _block_exists(kind, block)
    ]
    if not values.get("PARTYHELP_MYSQL_PASSWORD_BLOCK"):
        problems.append(
            "PARTYHELP_MYSQL_PASSWORD_BLOCK is not set: a deployment takes the "
            "MySQL password from a Secret block only"
        )
    salt = "checked-above" if values.get("PARTYHELP_PII_SALT_BLOCK") else None
    try:
        settings = load_settings(values, pii_salt=salt)
    except ConfigError as exc:
        problems.insert(0, str(exc))
        settings = None
    if (
        settings
        and job_timeout_seconds is not None
        and job_timeout_seconds < settings.flow_timeout_seconds + JOB_TIMEOUT_MARGIN_SECONDS
    ):
        problems.append(
            f"the job timeout, {job_timeout_seconds} s, must exceed "
            f"PARTYHELP_FLOW_TIMEOUT_SECONDS={settings.flow_timeout_seconds:g} by "
            f"{JOB_TIMEOUT_MARGIN_SECONDS} s or more: raise `timeout` in prefect.yaml"
        )
    if problems:
        refused = ConfigError(
            f"Prefect Variable {variable!r}: "
            + "; ".join(problems)
            + "; fix it with "
            + SETUP_HINT.format(name=variable)
        )
        # Prefect's CLI shows a failed step as a traceback: this line says it plainly first.
        print(f"deploy refused: {refused}", file=sys.stderr, flush=True)
        raise refused
    print(f"settings: Prefect Variable {variable!r} holds {len(values)} valid settings", flush=True)
    return {"variable": variable, "settings": sorted(values)}


def _named_blocks(values: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(setting, block type slug, block name) of every block the settings name."""
    return [
        (name, _BLOCK_KINDS.get(name, "secret"), block)
        for name, block in values.items()
        if name.endswith("_BLOCK") and BLOCK_NAME.match(block)
    ]


def _block_exists(kind: str, name: str) -> bool:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_block_document_by_name(name, kind, include_secrets=False)
        except ObjectNotFound:
            return False
    return True
