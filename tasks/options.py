"""What every task shares: retries for what a retry can heal, persisted results, settings.

Every task retries with an exponential backoff, but only for failures a retry can heal
(``partyhelp_pipeline.errors.is_transient``). A service found down by the run's pre-flight
(``ServiceUnreachableError``: it answered nothing for its whole window before anything was
read) is not one: the run fails in about the window instead of ``retries`` windows more. A
service lost mid-run, after it had answered the pre-flight, is: an outage that outlasts
one window is healed by the task's retry (tests/scenarios/test_faults.py shows it for GCS).

Results are persisted, with Prefect's default cache policy (inputs + task source + flow run
id), so a retried flow run skips what already finished, and a new run never reuses an
earlier run's results.

What crosses a task boundary, the one rule: names, days and the run's own records (an export
plan, a chunk's result, a manifest), never settings, clients or secrets. A table crosses as
its name, readable in the UI and stable in a cache key; each task turns it into its spec
once, at its top, and everything below the tasks takes specs. A task reads the run's
settings from ``runtime_settings()``, resolved once per flow run attempt in each process
(the flow resolves them first, secrets from their blocks included), and hands the functions
below it clients and values. So no secret is a task parameter, and none is in a cache key
(Prefect's default key hashes the parameters, the task's source and the flow run id).
"""

from __future__ import annotations

import threading
from typing import Any

from prefect.client.schemas.objects import State, TaskRun
from prefect.tasks import Task, exponential_backoff

from partyhelp_pipeline.errors import is_transient
from partyhelp_pipeline.settings import (
    Settings,
    import_time_setting,
    load_settings,
    read_setting,
)
from partyhelp_pipeline.source import private_file


def retry_if_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry lost connections, 5xx and rate limits; fail at once on anything else, a
    service the pre-flight found down included (not transient: ``ServiceUnreachableError``)."""
    try:
        state.result()
    except Exception as exc:
        return is_transient(exc)
    return True


# Read at import: Prefect fixes a task's retry options when it is decorated (a bad value is
# reported by runtime_settings, first thing in every run).
RETRIES: int = import_time_setting("task_retries")
RETRY_OPTIONS: dict[str, Any] = {
    "retries": RETRIES,
    "retry_delay_seconds": exponential_backoff(
        backoff_factor=import_time_setting("retry_delay_seconds")
    ),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_if_transient,
    "persist_result": True,
}


def runtime_settings() -> Settings:
    """This flow run's settings, secrets included: resolved once per run attempt in each
    process (the flow resolves them first; a task on a Dask worker, once there), then the
    same object. Outside a flow run (the command's checks), built afresh on each call."""
    from prefect.runtime import flow_run

    run_id = flow_run.get_id()
    if run_id is None:
        return resolve_settings()
    key = (run_id, flow_run.run_count)
    with _RESOLVED_LOCK:  # concurrent tasks of one run wait for the one build
        if key not in _RESOLVED:
            while len(_RESOLVED) >= _RESOLVED_KEPT:  # a long-lived worker runs many
                _RESOLVED.pop(next(iter(_RESOLVED)))
            _RESOLVED[key] = resolve_settings()
        return _RESOLVED[key]


# Per process: (flow run id, attempt) -> its settings. A retry from the UI is a new attempt
# and reads its settings again (a Secret block or the settings Variable may have changed).
_RESOLVED: dict[tuple[str, int], Settings] = {}
_RESOLVED_LOCK = threading.Lock()
_RESOLVED_KEPT = 8


def resolve_settings() -> Settings:
    """Settings from the environment, with secrets from Prefect ``Secret`` blocks if named.

    The drivers read TLS material from files only: a CA, certificate or key named by its
    ``PARTYHELP_MYSQL_SSL_*_BLOCK`` goes to a private file, whose path wins over the
    variable's own path (as the password block wins over the password).
    """
    kind = read_setting("secret_block_type")
    password = _secret_block(read_setting("mysql_password_block"), kind)
    salt = _secret_block(read_setting("pii_salt_block"), kind)
    settings = load_settings(mysql_password=password, pii_salt=salt)
    pem_files = {}
    for field in TLS_FILE_SETTINGS:
        pem = _secret_block(read_setting(f"{field}_block"))
        if pem is not None:
            pem_files[field] = private_file(pem if pem.endswith("\n") else pem + "\n", ".pem")
    return settings.model_copy(update=pem_files) if pem_files else settings


# The settings holding a PEM file's path, each with a ``*_block`` twin naming a Secret.
TLS_FILE_SETTINGS = ("mysql_ssl_ca", "mysql_ssl_cert", "mysql_ssl_key")


def _secret_block(name: str | None, kind: str = "secret") -> str | None:
    """The value of the block ``name``: a Prefect ``Secret`` (``secret``), or a prefect-gcp
    ``GcpSecret`` (``gcp-secret``), read from GCP Secret Manager. A block that does not
    exist fails in one line naming it and its type (``ValueError``: the command's exit 2)."""
    if not name:
        return None
    if kind == "gcp-secret":
        return _gcp_secret(name)
    from prefect.blocks.system import Secret

    block: Secret[str] = Secret.load(name)  # type: ignore[assignment]  # sync in a sync context
    return str(block.get())


def _gcp_secret(name: str) -> str:
    try:
        from prefect_gcp.secret_manager import GcpSecret
    except ImportError:
        raise ValueError(
            f"PARTYHELP_SECRET_BLOCK_TYPE=gcp-secret, but prefect-gcp's secret manager is "
            f"not installed (block {name!r}): pip install google-cloud-secret-manager"
        ) from None
    try:
        block = GcpSecret.load(name)
    except ValueError:
        raise ValueError(
            f"no GcpSecret block named {name!r} (PARTYHELP_SECRET_BLOCK_TYPE=gcp-secret): "
            "create it with prefect-gcp, naming the Secret Manager secret"
        ) from None
    value: bytes = block.read_secret()
    return value.decode("utf-8")
