"""One publish of a table at a time, across every run: a Prefect global concurrency limit.

Two runs of the same day at once (two command-line runs, or one and the deployment's run:
the deployment's own concurrency limit cannot see a command-line run) each export a snapshot
of their own and load it into a staging table of their own. Publishing it must not
interleave: reading the last published count from ``ph_sync_runs`` for the row-drop check,
the copy over the table, and the check of what the table then holds. ``publish_lock``
holds the limit ``partyhelp-publish-PROJECT.DATASET.TABLE`` (one slot, created on first use)
around ``warehouse.replace_table``: the second run's publish of that table starts when the first's
has ended, and then replaces it with its own verified snapshot; other tables, and other
datasets, go on in parallel.

The slot is leased: the holder renews it while it publishes, and a killed process's slot
frees itself within ``PUBLISH_LEASE_SECONDS``. Waiting has no limit of its own: the flow's
timeout bounds it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from partyhelp_pipeline.logs import get_logger
from partyhelp_pipeline.settings import Settings

PUBLISH_LIMIT_PREFIX = "partyhelp-publish-"
PUBLISH_LEASE_SECONDS = 60.0


def publish_limit_name(settings: Settings, table: str) -> str:
    """``partyhelp-publish-my-project.partyhelp.ph_leads``: one limit per BigQuery table."""
    return PUBLISH_LIMIT_PREFIX + settings.table_ref(table)


def ensure_publish_limit(name: str) -> None:
    """Create the one-slot limit ``name`` unless it exists (another run may create it at the
    same moment: either creation does)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
            return
        except ObjectNotFound:
            pass
        with suppress(ObjectAlreadyExists):
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=name, limit=1))


@contextmanager
def publish_lock(settings: Settings, table: str,
                 timeout_seconds: float | None = None) -> Iterator[None]:
    """Hold the publish slot of ``table`` for the block; wait while another run holds it.

    Raises ``TimeoutError`` after ``timeout_seconds`` of waiting (None: no limit).
    """
    from prefect.concurrency.sync import concurrency

    name = publish_limit_name(settings, table)
    ensure_publish_limit(name)
    started = time.monotonic()
    with concurrency(name, occupy=1, timeout_seconds=timeout_seconds, strict=True,
                     lease_duration=PUBLISH_LEASE_SECONDS):
        waited = time.monotonic() - started
        if waited >= 1:
            get_logger().info("%s: waited %.0fs while another run published it (%s)",
                              table, waited, name)
        yield
