"""One publish of a table at a time, across every run: a Prefect global concurrency limit.

Two runs of the same day at once (two command-line runs, or one and the deployment's run:
the deployment's own concurrency limit cannot see a command-line run) each export a snapshot
of their own and load it into a staging table of their own. Publishing it must not
interleave: reading the last published count from ``ph_sync_runs`` for the row-drop check,
the copy over the table, and the check of what the table then holds. ``publish_lock``
holds the limit ``partyhelp-publish-PROJECT.DATASET.TABLE`` (one slot, created on first use)
around ``warehouse.replace.replace_table``: the second run's publish of that table starts
when the first's has ended, and then replaces it with its own verified snapshot; other
tables, and other datasets, go on in parallel.

The slot is leased: the holder renews it while it publishes, and a killed process's slot
frees itself within ``PUBLISH_LEASE_SECONDS``. Waiting has no limit of its own: the flow's
timeout bounds it.

Who holds the slot: Prefect keeps a lease's holder but its API does not list a global
limit's holders, so the holder writes its flow run's name and id to the Prefect Variable
``partyhelp-publish-holder-...`` while it holds the slot (and removes it before releasing).
A run that finds the slot taken (by the server's count of held slots: a slow API is no
other run) names that run, and only then logs that it waits.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from partyhelp_pipeline.logs import get_logger
from partyhelp_pipeline.settings import Settings

PUBLISH_LIMIT_PREFIX = "partyhelp-publish-"
PUBLISH_LEASE_SECONDS = 60.0
HOLDER_VARIABLE_PREFIX = "partyhelp-publish-holder-"
_NOT_VARIABLE_TEXT = re.compile(r"[^a-z0-9_-]")  # Prefect's rule for Variable names
_VARIABLE_NAME_LENGTH = 255
UNKNOWN_HOLDER = "another run (it has not named itself yet)"


def publish_limit_name(settings: Settings, table: str) -> str:
    """``partyhelp-publish-my-project.partyhelp.ph_leads``: one limit per BigQuery table."""
    return PUBLISH_LIMIT_PREFIX + settings.table_ref(table)


def holder_variable_name(limit: str) -> str:
    """The Prefect Variable naming who holds ``limit``: its name in Variable letters (a
    digest keeps a long one unique within Prefect's 255 characters)."""
    name = HOLDER_VARIABLE_PREFIX + _NOT_VARIABLE_TEXT.sub(
        "_", limit.removeprefix(PUBLISH_LIMIT_PREFIX).lower()
    )
    if len(name) <= _VARIABLE_NAME_LENGTH:
        return name
    digest = hashlib.sha256(limit.encode()).hexdigest()[:16]
    return f"{name[: _VARIABLE_NAME_LENGTH - 17]}-{digest}"


def ensure_publish_limit(name: str) -> bool:
    """Create the one-slot limit ``name`` unless it exists (another run may create it at the
    same moment: either creation does); whether its slot is taken now (the server counts
    the slots its leases hold: a slow API is not a holder)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            limit = client.read_global_concurrency_limit_by_name(name)
            return limit.active_slots >= limit.limit
        except ObjectNotFound:
            pass
        with suppress(ObjectAlreadyExists):
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
    return False


def this_holder() -> dict[str, Any]:
    """Who this publish is: its flow run's name and id (None outside a flow run), host, pid."""
    from prefect.runtime import flow_run

    run_id = flow_run.get_id()
    return {
        "flow_run_id": run_id,
        "flow_run_name": flow_run.get_name() if run_id else None,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }


def describe_holder(holder: Any) -> str:
    """``run 'amber-fox' (3f2a...)``, or the process when it is no flow run."""
    if not isinstance(holder, dict):
        return UNKNOWN_HOLDER
    if holder.get("flow_run_id"):
        return f"run {holder.get('flow_run_name')!r} ({holder['flow_run_id']})"
    return f"process {holder.get('pid')} on {holder.get('host')} (no flow run)"


def read_holder(limit: str, tries: int = 3) -> str:
    """Who holds ``limit``, as ``describe_holder`` says it. The holder writes its name just
    after taking the slot: an empty record is read again, briefly."""
    from prefect.variables import Variable

    for attempt in range(tries):
        holder = Variable.get(holder_variable_name(limit))
        if holder is not None or attempt == tries - 1:
            return describe_holder(holder)
        time.sleep(0.5)
    return UNKNOWN_HOLDER


@contextmanager
def _named_holder(limit: str) -> Iterator[None]:
    """Record this publish as the holder of ``limit`` for the block (the slot is held)."""
    from prefect.variables import Variable

    name = holder_variable_name(limit)
    try:  # only a name for others' log lines: never a reason to fail the publish
        Variable.set(name, this_holder(), tags=["partyhelp"], overwrite=True)
    except Exception as exc:
        get_logger().debug("%s: could not record this run as its publisher: %s", limit, exc)
    try:
        yield
    finally:  # before the slot is released: the next holder's record is never removed
        with suppress(Exception):
            Variable.unset(name)


@contextmanager
def publish_lock(
    settings: Settings, table: str, timeout_seconds: float | None = None
) -> Iterator[None]:
    """Hold the publish slot of ``table`` for the block; wait while another run holds it,
    naming that run.

    Raises ``TimeoutError`` after ``timeout_seconds`` of waiting (None: no limit).
    """
    from prefect.concurrency.sync import concurrency

    name = publish_limit_name(settings, table)
    taken, started = ensure_publish_limit(name), time.monotonic()
    holder = read_holder(name) if taken else None
    if holder:
        get_logger().info("%s: %s is publishing it; waiting for its end (%s)", table, holder, name)
    with (
        concurrency(
            name,
            occupy=1,
            timeout_seconds=timeout_seconds,
            strict=True,
            lease_duration=PUBLISH_LEASE_SECONDS,
        ),
        _named_holder(name),
    ):
        if holder:
            get_logger().info(
                "%s: waited %.0fs while %s published it", table, time.monotonic() - started, holder
            )
        yield
