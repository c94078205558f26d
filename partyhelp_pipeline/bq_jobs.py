"""Deterministic BigQuery job ids, so that a retry never runs a job twice.

Every job that writes (each load, the history transaction, the publishing copy, a view's
DDL, the audit append) gets its id from the run, the step, the table and the step's input:
``partyhelp_<step>_<table>_<flow run id>_a<attempt>_<digest of the input>``. BigQuery
refuses a second job under an id it holds (409 Conflict), so a task retried after its job
had finished (the answer to the insert was lost, the task failed after it) meets that
conflict and attaches to the existing job (``start_job``), using its outcome instead of
running the work again.

- A new run, a new attempt of a run (a retry from the UI) or a new export (new part URIs and
  CRCs) gives new ids: the work is done again. Task retries inside one attempt share ids.
- BigQuery never reuses the id of a failed job either, so a job that failed is passed over:
  the next try gets the id with ``_t2``, ``_t3``, ... appended, which a later retry walks
  the same way, reaching the same job.
- Reads (totals, the published day, the last published count) keep random ids: a retry
  must see the tables as they are now.
- Outside a flow run (``job_run`` not entered), ids get a random run part: unique, as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry, if_exception_type
from google.cloud import bigquery

from partyhelp_pipeline.clients import call_options
from partyhelp_pipeline.errors import LoadError
from partyhelp_pipeline.logs import get_logger

MAX_JOB_ID_LENGTH = 1024  # BigQuery's limit; letters, digits, "_" and "-" only
JOB_TRIES = 20  # ids of one job: its first and its re-runs after failed jobs
DIGEST_LENGTH = 24  # hex characters of the input's SHA-256: 96 bits
_NOT_JOB_ID_TEXT = re.compile(r"[^A-Za-z0-9_-]")

Job = TypeVar("Job", bigquery.LoadJob, bigquery.CopyJob, bigquery.QueryJob)


@dataclass(frozen=True)
class JobRun:
    """The flow run a job belongs to, and which attempt of it (Prefect's ``run_count``)."""

    run_id: str
    attempt: int = 1


_JOB_RUN: ContextVar[JobRun | None] = ContextVar("partyhelp_job_run", default=None)


@contextlib.contextmanager
def job_run(run_id: str | None, attempt: int | None = 1) -> Iterator[None]:
    """Jobs started inside the block (this thread or task) get ids of this run and attempt;
    ``run_id`` None (no flow run) gives random ids."""
    token = _JOB_RUN.set(JobRun(str(run_id), max(attempt or 1, 1)) if run_id else None)
    try:
        yield
    finally:
        _JOB_RUN.reset(token)


def input_digest(*inputs: Any) -> str:
    """A short SHA-256 of the step's input (JSON, keys sorted: the same input, the same
    digest, in any process)."""
    text = json.dumps(inputs, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:DIGEST_LENGTH]


def job_id(step: str, table: str, *inputs: Any) -> str:
    """The id of a job of ``step`` on ``table`` with ``inputs`` in the current run (see the
    module's docstring); valid for BigQuery, room left for a ``_t<n>`` suffix."""
    run = _JOB_RUN.get()
    run_part = f"{run.run_id}_a{run.attempt}" if run else f"norun-{uuid.uuid4().hex}"
    head = _NOT_JOB_ID_TEXT.sub("_", f"partyhelp_{step}_{table}_{run_part}")
    tail = f"_{input_digest(step, table, *inputs)}"
    return head[: MAX_JOB_ID_LENGTH - len(tail) - 8] + tail


def try_id(base_id: str, number: int) -> str:
    """The id of the ``number``-th try of a job: the base id, then ``<base>_t2``, ..."""
    return base_id if number <= 1 else f"{base_id}_t{number}"


def _failed(job: Any) -> bool:
    return job.state == "DONE" and job.error_result is not None


def start_job(
    client: bigquery.Client,
    base_id: str,
    start: Callable[[str], Job],
    *,
    what: str,
    window: float,
    usable: Callable[[Job], bool] | None = None,
) -> Job:
    """``start(id)`` under the first try id BigQuery does not hold yet, or the job an earlier
    try started under it (a 409 Conflict), running or done: its outcome is this one's.
    An earlier job that failed, or whose output is gone (``usable`` says no), is passed
    over. ``what`` names the job in the log and errors (``ph_venues: load``); ``window``
    bounds the look-up of an earlier job (``clients.call_options``)."""
    for number in range(1, JOB_TRIES + 1):
        candidate = try_id(base_id, number)
        try:
            return start(candidate)
        except gexc.Conflict:
            # The job's own location: BigQuery finds a job only where it runs.
            job = cast(
                Job, client.get_job(candidate, location=client.location, **call_options(window))
            )
        if _failed(job) or (job.state == "DONE" and usable is not None and not usable(job)):
            get_logger().info(
                "%s: job %s of an earlier try %s; starting it anew",
                what,
                candidate,
                "failed" if _failed(job) else "left nothing usable",
            )
            continue
        get_logger().info(
            "%s: job %s was started by an earlier request or try; using its "
            "outcome instead of running it again",
            what,
            candidate,
        )
        return job
    raise LoadError(
        f"{what}: {JOB_TRIES} BigQuery jobs {base_id}[_tN] already failed; "
        "read their errors in BigQuery, fix the cause, then run again"
    )


class _StillRunning(Exception):
    """A polled job is not done yet (``JOB_POLLING``'s signal to ask again)."""


# How often a running load or copy job is asked for (the library's own polling: 1 s, then
# up to 10 s), for as long as it runs: a large load legitimately takes minutes.
JOB_POLLING = Retry(
    predicate=if_exception_type(_StillRunning), initial=1.0, maximum=10.0, timeout=None
)


def wait_for(job: Job, window: float) -> Job:
    """Wait for a load or copy ``job`` to end, then raise its error if it failed. Each poll
    is one request ending within ``window`` (``call_options``: a hung server holds none for
    ever, where ``result()`` alone would let each poll wait 128 s); the whole wait is not
    bounded."""
    options = call_options(window)

    def finished() -> None:
        if not job.done(**options):
            raise _StillRunning(job.job_id)

    JOB_POLLING(finished)()
    job.result(**options)  # done: no more polling; the job's own error, if it failed
    return job
