"""What every task shares: retries for what a retry can heal, persisted results, settings.

Every task retries with an exponential backoff, but only for failures a retry can heal
(``partyhelp_pipeline.errors.is_transient``). A service found down by the run's pre-flight
(``ServiceUnreachableError``: it answered nothing for its whole window before anything was
read) is not one: the run fails in about the window instead of ``retries`` windows more. A
service lost mid-run, after it had answered the pre-flight, is: an outage that outlasts
one window is healed by the task's retry (tests/test_faults.py shows it for GCS).

Results are persisted, with Prefect's default cache policy (inputs + task source + flow run
id), so a retried flow run skips what already finished, and a new run never reuses an
earlier run's results.
"""

from __future__ import annotations

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
    """Settings from the environment, with secrets from Prefect ``Secret`` blocks if named.

    The drivers read TLS material from files only: a CA, certificate or key named by its
    ``PARTYHELP_MYSQL_SSL_*_BLOCK`` goes to a private file, whose path wins over the
    variable's own path (as the password block wins over the password).
    """
    password = _secret_block(read_setting("mysql_password_block"))
    salt = _secret_block(read_setting("pii_salt_block"))
    settings = load_settings(mysql_password=password, pii_salt=salt)
    pem_files = {}
    for field in TLS_FILE_SETTINGS:
        pem = _secret_block(read_setting(f"{field}_block"))
        if pem is not None:
            pem_files[field] = private_file(pem if pem.endswith("\n") else pem + "\n", ".pem")
    return settings.model_copy(update=pem_files) if pem_files else settings


# The settings holding a PEM file's path, each with a ``*_block`` twin naming a Secret.
TLS_FILE_SETTINGS = ("mysql_ssl_ca", "mysql_ssl_cert", "mysql_ssl_key")


def _secret_block(name: str | None) -> str | None:
    if not name:
        return None
    from prefect.blocks.system import Secret

    block: Secret[str] = Secret.load(name)  # type: ignore[assignment]  # sync in a sync context
    return str(block.get())
