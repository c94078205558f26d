"""Which failures are retried: only what a retry can heal."""

from __future__ import annotations

import logging

import pymysql
import pytest
import requests
from google.api_core import exceptions as gexc
from prefect import flow, task

from partyhelp_pipeline.clients import gcs_upload_retry
from partyhelp_pipeline.errors import (
    BadDataError,
    ReconciliationError,
    SchemaDriftError,
    ServiceUnreachableError,
    SourceUnavailableError,
    StorageUnavailableError,
    is_transient,
    unanswered_reason,
)
from partyhelp_pipeline.settings import load_settings
from tasks.options import RETRY_OPTIONS
from tests.partyhelp_pipeline.settings.test_loading import VALID


@pytest.mark.parametrize(
    "exc",
    [
        pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"),
        pymysql.err.OperationalError(2003, "Can't connect to MySQL server"),
        pymysql.err.OperationalError(1927, "Connection was killed"),
        gexc.ServiceUnavailable("backend"),
        gexc.TooManyRequests("rate limit"),
        gexc.InternalServerError("oops"),
        gexc.BadRequest("x", errors=[{"reason": "backendError", "message": "retry"}]),
        gexc.BadRequest("Could not serialize access to table due to concurrent update"),
        requests.exceptions.ConnectionError("refused"),
        ConnectionResetError("reset"),
        TimeoutError("slow"),
        SourceUnavailableError("down"),
        StorageUnavailableError("GCS unavailable"),
    ],
)
def test_transient_failures_are_retried(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        pymysql.err.OperationalError(1054, "Unknown column 'l.status' in 'field list'"),
        pymysql.err.ProgrammingError(1064, "syntax"),
        gexc.BadRequest("x", errors=[{"reason": "invalid", "message": "wrong schema"}]),
        gexc.NotFound("no such table"),
        gexc.Forbidden("denied"),
        SchemaDriftError("ph_leads: source column leads.status is missing"),
        BadDataError("ph_venues: column area_id of row id 7"),
        ReconciliationError("ph_leads: rows differ"),
        ValueError("bug"),
    ],
)
def test_permanent_failures_fail_at_once(exc: BaseException) -> None:
    assert not is_transient(exc)


@pytest.mark.parametrize("raw", ["soon", "0", "-5"])
def test_a_retry_window_that_is_not_a_positive_number_is_refused_by_name(raw: str) -> None:
    with pytest.raises(ValueError, match=f"PARTYHELP_GCS_RETRY_SECONDS .*{raw}"):
        gcs_upload_retry(load_settings({**VALID, "PARTYHELP_GCS_RETRY_SECONDS": raw}))


def test_the_gcs_retry_window_is_the_library_default_unless_set() -> None:
    assert gcs_upload_retry(load_settings(VALID)).timeout == 120
    settings = load_settings({**VALID, "PARTYHELP_GCS_RETRY_SECONDS": "7.5"})
    assert gcs_upload_retry(settings).timeout == 7.5


def test_a_task_retries_a_lost_connection_but_not_a_schema_error(stack: None) -> None:
    attempts = {"transient": 0, "permanent": 0}

    @task(**{**RETRY_OPTIONS, "retries": 2, "retry_delay_seconds": 0, "persist_result": False})
    def flaky(kind: str) -> str:
        attempts[kind] += 1
        if kind == "transient" and attempts[kind] < 3:
            raise pymysql.err.OperationalError(2013, "Lost connection")
        if kind == "permanent":
            raise SchemaDriftError("ph_leads: source column leads.status is missing")
        return "done"

    @flow
    def run_both() -> tuple[str, str]:
        healed = flaky("transient")
        failed = flaky("permanent", return_state=True)
        return healed, failed.message

    healed, message = run_both()
    assert healed == "done" and attempts["transient"] == 3
    assert attempts["permanent"] == 1
    assert "ph_leads: source column leads.status is missing" in message


class _FakeLoadJob:
    """A load job that ends as ``outcome`` says. A fake: BigQuery's own job failures
    (backendError, rateLimitExceeded) cannot be produced on demand against the emulator."""

    def __init__(self, number: int, outcome: BaseException | None, known: bool) -> None:
        self.job_id, self._outcome, self._known = f"job_{number}", outcome, known
        self.error_result = {"reason": "backendError"} if outcome and known else None

    def result(self, **options: object) -> None:
        if self._outcome:
            raise self._outcome

    def done(self, reload: bool = True, **options: object) -> bool:
        if reload and not self._known and self._outcome:
            raise self._outcome  # the connection was lost while the job was polled
        return self._known


class _FakeClient:
    def __init__(self, outcomes: list[tuple[BaseException | None, bool]]) -> None:
        self.outcomes, self.submitted = outcomes, 0

    def load_table_from_uri(self, *args: object, **kwargs: object) -> _FakeLoadJob:
        outcome, known = self.outcomes[min(self.submitted, len(self.outcomes) - 1)]
        self.submitted += 1
        return _FakeLoadJob(self.submitted, outcome, known)


@pytest.mark.parametrize(
    ("outcomes", "submitted", "succeeds"),
    [
        # failed in BigQuery, retryable: run again, then it loads
        ([(gexc.InternalServerError("backendError"), True), (None, True)], 2, True),
        # failed in BigQuery every time: run again until the window ends (None: more than once)
        ([(gexc.TooManyRequests("rateLimitExceeded"), True)], None, False),
        # failed in BigQuery for good (a bad schema): not run again
        ([(gexc.BadRequest("Provided Schema does not match"), True)], 1, False),
        # outcome unknown (connection lost while waiting): left to the task's retry
        ([(ConnectionResetError("reset"), False)], 1, False),
    ],
)
def test_a_load_job_bigquery_failed_for_a_transient_reason_is_run_again(
    outcomes: list[tuple[BaseException | None, bool]],
    submitted: int | None,
    succeeds: bool,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """(A fake client: BigQuery failing a job for a transient reason cannot be made to
    order.) Each re-run is logged at INFO, saying "retrying"; never a WARNING (issue 19)."""
    from google.cloud import bigquery

    from partyhelp_pipeline.errors import LoadError
    from partyhelp_pipeline.spec import TABLES
    from partyhelp_pipeline.warehouse import load
    from partyhelp_pipeline.warehouse.target import Warehouse

    monkeypatch.setattr(load, "LOAD_JOB_RETRY", load.LOAD_JOB_RETRY.with_delay(0.05, 0.05))
    caplog.set_level(logging.INFO, logger="partyhelp_sync")
    client = _FakeClient(outcomes)
    warehouse = Warehouse(client, "p", "d", "US", 0.5, "UTC", 0, 20, 1, False)  # type: ignore[arg-type]
    config = bigquery.LoadJobConfig()

    def run() -> bigquery.LoadJob:
        return load.run_load_job(
            warehouse, TABLES["ph_venues"], ["gs://b/p"], "p.d.t", config, "load_1"
        )

    if succeeds:
        assert run().job_id == f"job_{submitted}"
    else:
        with pytest.raises(LoadError, match=r"^ph_venues: BigQuery load failed"):
            run()
    assert client.submitted == submitted if submitted else client.submitted > 1
    submitted = client.submitted
    reruns = [r for r in caplog.records if "ph_venues: load job" in r.getMessage()]
    assert [(r.levelname, "retrying" in r.getMessage()) for r in reruns] == [("INFO", True)] * (
        submitted - 1
    ), caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


# ------------------------------------------------------------------ a service down for a window


def _refused_for_a_window() -> BaseException:
    """What the BigQuery client raises after a whole window of refused connections: a real
    call to a port nobody listens on, with a 1-second window."""
    from google.api_core.retry import Retry
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    from tests.emulators import free_port

    client = bigquery.Client(
        project="p",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": f"http://127.0.0.1:{free_port()}"},
    )
    retry: Retry = bigquery.DEFAULT_RETRY
    with pytest.raises(Exception) as raised:
        client.get_dataset("p.d", retry=retry.with_timeout(1), timeout=1)
    return raised.value


def test_a_window_of_refused_connections_is_told_apart_from_a_server_that_answered() -> None:
    refused = _refused_for_a_window()
    assert isinstance(refused, gexc.RetryError)
    assert is_transient(refused)  # a lost connection mid-run: the task's retry may heal it
    assert unanswered_reason(refused) == "connection refused"
    upload = StorageUnavailableError(
        "GCS unavailable: the upload of gs://b/p gave up after 1 s of retries: "
        "ConnectionError: ('Connection aborted.', RemoteDisconnected('Remote end closed'))"
    )
    assert unanswered_reason(upload) == "connection reset"
    # A server that answered (503 for the whole window) is no unanswered service.
    answered = gexc.RetryError("Timeout of 1.0s exceeded", gexc.ServiceUnavailable("backend"))
    assert unanswered_reason(answered) is None
    assert unanswered_reason(ValueError("bug")) is None
    # What the pre-flight makes of a window of refusals is final: no task retry.
    assert not is_transient(ServiceUnreachableError("BigQuery at ... did not answer"))


def test_a_task_is_not_retried_when_the_preflight_found_a_service_down(stack: None) -> None:
    """The task's retry condition (``tasks.options``): a service the pre-flight found down
    (``ServiceUnreachableError``) gets one attempt; a window of refusals mid-run, after the
    service had answered, is retried (an outage may outlast one window and still heal)."""
    attempts = {"down": 0, "lost": 0}

    @task(**{**RETRY_OPTIONS, "retries": 2, "retry_delay_seconds": 0, "persist_result": False})
    def call(kind: str) -> str:
        attempts[kind] += 1
        if kind == "down":
            raise ServiceUnreachableError(
                "BigQuery at http://127.0.0.1:1 did not answer within 1 s (connection refused)"
            )
        if attempts[kind] < 2:
            raise _refused_for_a_window()
        return "done"

    @flow
    def run_both() -> tuple[bool, str]:
        down = call("down", return_state=True)
        return down.is_failed(), call("lost")

    assert run_both() == (True, "done")
    assert attempts == {"down": 1, "lost": 2}
