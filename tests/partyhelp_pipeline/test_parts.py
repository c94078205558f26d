"""Parts stream into GCS while they are written (fake-gcs-server, for real), and the export
reports its progress in log lines with the source's count, the rate and an ETA (the progress
artifact inside a task: tests/partyhelp_pipeline/test_progress.py)."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import gc
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import google_crc32c
import pytest
import requests
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry, if_transient_error
from google.cloud.storage.exceptions import InvalidResponse
from google.cloud.storage.retry import DEFAULT_RETRY

from partyhelp_pipeline import export, parts
from partyhelp_pipeline import manifest as mf
from partyhelp_pipeline.clients import gcs_upload_retry, storage_client
from partyhelp_pipeline.errors import ExportIntegrityError, StorageUnavailableError
from partyhelp_pipeline.export_target import ExportTarget
from partyhelp_pipeline.settings import load_settings
from partyhelp_pipeline.spec import TABLES
from tests.emulators import PrivateEmulators

SYNC_DATE = dt.date(2026, 11, 25)
PIECE = 256 * 1024
CHUNK = parts.UPLOAD_CHUNK_BYTES  # one piece of a resumable upload


@pytest.fixture()
def gcs(sync_env: dict[str, str]) -> Any:
    """The sync's settings and its (empty) bucket on fake-gcs-server."""
    settings = load_settings()
    return settings, storage_client(settings).bucket(settings.gcs_bucket)


def _run_in_thread(
    upload: parts.StreamingUpload, chunk: int, outcome: dict[str, Any]
) -> threading.Thread:
    """Run ``upload`` in a thread; its PartInfo or its error lands in ``outcome``."""

    def run() -> None:
        try:
            outcome["info"] = upload.run(chunk)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _stream(
    bucket: Any,
    part: parts.PartFile,
    retry: Retry,
    outcome: dict[str, Any],
    name: str | None = None,
    chunk: int = 0,
) -> tuple[parts.StreamingUpload, threading.Thread]:
    """Follow ``part`` with a streaming upload to ``name`` (a new one by default), in a
    thread (see ``_run_in_thread``)."""
    upload = parts.StreamingUpload(bucket, name or f"p/{secrets.token_hex(4)}.avro", part, retry)
    return upload, _run_in_thread(upload, chunk, outcome)


def _wait_until(condition: Callable[[], bool], timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_a_part_uploads_while_it_is_written_and_appears_only_whole(
    gcs: Any, tmp_path: Path
) -> None:
    settings, bucket = gcs
    data = os.urandom(2 * CHUNK + 12345)  # two full upload pieces and a partial one
    part = parts.PartFile(str(tmp_path / "part.avro"))
    name = f"stream/{secrets.token_hex(4)}.avro"
    outcome: dict[str, Any] = {}
    upload, thread = _stream(bucket, part, gcs_upload_retry(settings), outcome, name, chunk=3)
    for start in range(0, CHUNK + PIECE, PIECE):
        part.write(data[start : start + PIECE])
        part.publish()
    # A whole piece is in GCS before the part is complete, yet no object is visible.
    assert _wait_until(lambda: upload.persisted >= CHUNK)
    assert bucket.get_blob(name) is None and thread.is_alive()
    part.write(data[CHUNK + PIECE :])
    part.close(rows=7)
    thread.join(timeout=120)

    info: mf.PartInfo = outcome["info"]
    expected_crc = mf.crc32c_base64(data)
    assert (info.rows, info.bytes, info.crc32c, info.chunk) == (7, len(data), expected_crc, 3)
    assert info.uri == f"gs://{bucket.name}/{name}"
    stored = bucket.get_blob(name)
    assert (stored.size, stored.crc32c) == (len(data), expected_crc)
    assert stored.download_as_bytes() == data
    assert not os.path.exists(part.path)  # the local copy goes once GCS has it


def test_an_aborted_part_leaves_no_object(gcs: Any, tmp_path: Path) -> None:
    settings, bucket = gcs
    part = parts.PartFile(str(tmp_path / "part.avro"))
    name = f"stream/{secrets.token_hex(4)}.avro"
    outcome: dict[str, Any] = {}
    upload, thread = _stream(bucket, part, gcs_upload_retry(settings), outcome, name)
    part.write(os.urandom(CHUNK + PIECE))
    part.publish()
    assert _wait_until(lambda: upload.persisted >= CHUNK)
    part.abort()  # the export failed mid-part
    thread.join(timeout=120)
    assert isinstance(outcome.pop("error"), parts.PartAborted)
    gc.collect()  # its writer, collected, does not finalise the upload (io closes it)
    assert bucket.get_blob(name) is None


def test_an_existing_object_is_accepted_only_with_the_same_bytes(gcs: Any, tmp_path: Path) -> None:
    """Create-only: a part whose name exists (our own request that landed before its answer
    was lost) is accepted when its bytes are ours, refused otherwise."""
    settings, bucket = gcs
    data = os.urandom(2 * 1024 * 1024)
    name = f"stream/{secrets.token_hex(4)}.avro"
    bucket.blob(name).upload_from_string(data)
    part = parts.PartFile(str(tmp_path / "same.avro"))
    part.write(data)
    part.close(rows=1)
    upload = parts.StreamingUpload(bucket, name, part, gcs_upload_retry(settings))
    existing = upload._existing()
    assert (existing.size, existing.crc32c) == (len(data), mf.crc32c_base64(data))
    other = parts.PartFile(str(tmp_path / "other.avro"))
    other.write(b"different bytes")
    other.close(rows=1)
    with pytest.raises(ExportIntegrityError, match="a different object already exists"):
        parts.StreamingUpload(bucket, name, other, gcs_upload_retry(settings))._existing()


def _answer(status: int) -> requests.Response:
    """An HTTP answer of ``status`` to an upload request, as the library's transport gets it."""
    response = requests.Response()
    response.status_code, response._content = status, b"{}"
    response.request = requests.Request("PUT", "http://gcs.invalid/upload").prepare()
    return response


def test_the_errors_of_the_library_upload_are_classified() -> None:
    """What BlobWriter raises once its retries give up (the transport's own ConnectionError,
    an answer it leaves unmapped) is a transient StorageUnavailableError naming the part;
    a refusal is left as it is."""
    retry = DEFAULT_RETRY.with_timeout(2)
    down = gexc.RetryError("gave up", requests.exceptions.ConnectionError("refused"))
    busy = gexc.RetryError("gave up", InvalidResponse(_answer(503), "busy"))
    for exc, cause in ((down, "ConnectionError"), (busy, "ServiceUnavailable")):
        error = parts.storage_unavailable(exc, "b", "p.avro", retry)
        assert error is not None and error.transient, exc
        assert f"upload of gs://b/p.avro gave up after 2 s of retries: {cause}" in str(error)
    assert parts.storage_unavailable(InvalidResponse(_answer(403), "no"), "b", "p", retry) is None


def test_the_part_checksum_is_the_crc32c_of_every_byte_written(tmp_path: Path) -> None:
    part = parts.PartFile(str(tmp_path / "p.avro"))
    pieces = [b"Obj\x01", bytearray(b"header"), memoryview(b"block" * 1000)]
    for piece in pieces:
        part.write(piece)
    part.close(rows=0)
    whole = b"".join(bytes(p) for p in pieces)
    assert Path(part.path).read_bytes() == whole
    assert part.size == len(whole)
    assert base64.b64decode(part.crc32c_base64()) == google_crc32c.value(whole).to_bytes(4, "big")


def test_an_export_streams_several_parts_into_gcs(
    gcs: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The production store through the real export: every part listed is whole, and the
    progress lines give rows of the source's count, a rate and an ETA."""
    monkeypatch.setenv("PARTYHELP_PROGRESS_SECONDS", "0")
    # Every part (8 KB here) through an upload session (of one piece: pieces are multiples
    # of 256 KiB; a part of several pieces is the first test's).
    monkeypatch.setattr(parts, "SINGLE_REQUEST_MAX_BYTES", 0)
    settings = load_settings()
    spec, target = TABLES["ph_lead_matches"], ExportTarget.from_settings(settings)
    plan = export.plan_export(target, spec, SYNC_DATE, "test-stream")
    with caplog.at_level(logging.INFO, logger="partyhelp_sync"):
        result = export.export_chunk(target, spec, plan, 0)
    assert len(result.parts) > 1 and result.rows == result.source_totals["row_count"] > 0
    mf.verify_parts(
        storage_client(settings),
        mf.Manifest(
            "t", "d", "e", None, "", "", list(result.parts), result.rows, 0, {}, {}, {}, [], {}, []
        ),
    )
    progress = [r.getMessage() for r in caplog.records if "rows/s" in r.getMessage()]
    assert progress, caplog.text
    assert f"of {result.rows} rows" in progress[-1] and "ETA" in progress[-1]


# ---------------------------------------------------------------- GCS stopped mid-part


@pytest.fixture()
def private_gcs(stack: None) -> Iterator[tuple[PrivateEmulators, Any]]:
    """A fake-gcs-server of this test's own (started and stopped for real with
    scripts/stack.sh, the shared one untouched) and a bucket on it."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    pair = PrivateEmulators()
    try:
        pair.start("gcs")
        client = storage.Client(
            project="partyhelp-test",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": pair.client_env["STORAGE_EMULATOR_HOST"]},
        )
        yield pair, client.create_bucket(f"ph-stream-{secrets.token_hex(4)}")
    finally:
        with contextlib.suppress(AssertionError):
            pair.stop("gcs")
        shutil.rmtree(pair.data, ignore_errors=True)


def test_gcs_stopped_mid_part_the_part_is_sent_again_and_stored_whole(
    private_gcs: tuple[PrivateEmulators, Any], tmp_path: Path
) -> None:
    pair, bucket = private_gcs
    data = os.urandom(2 * CHUNK + 999)
    part = parts.PartFile(str(tmp_path / "part.avro"))
    outcome: dict[str, Any] = {}
    failures: list[Exception] = []  # each failed request, before the library retries it
    retry = Retry(predicate=if_transient_error, timeout=120, on_error=failures.append)
    upload, thread = _stream(bucket, part, retry, outcome)
    part.write(data[: CHUNK + PIECE])
    part.publish()
    assert _wait_until(lambda: upload.persisted >= CHUNK)
    pair.stop("gcs")  # for real, mid-part: its upload session is lost with the process
    part.write(data[CHUNK + PIECE :])
    part.close(rows=5)
    assert _wait_until(lambda: len(failures) >= 1)
    pair.start("gcs")
    thread.join(timeout=180)

    assert upload.restarts == 1, outcome  # the session was lost: the part was sent again
    info: mf.PartInfo = outcome["info"]
    assert (info.bytes, info.crc32c, info.rows) == (len(data), mf.crc32c_base64(data), 5)
    stored = bucket.get_blob(mf.split_gs_uri(info.uri)[1])
    assert stored.download_as_bytes() == data


def test_gcs_down_longer_than_the_retries_fails_the_part_and_stores_nothing(
    private_gcs: tuple[PrivateEmulators, Any], tmp_path: Path
) -> None:
    pair, bucket = private_gcs
    part = parts.PartFile(str(tmp_path / "part.avro"))
    outcome: dict[str, Any] = {}
    upload, thread = _stream(bucket, part, DEFAULT_RETRY.with_timeout(1), outcome)
    part.write(os.urandom(CHUNK + PIECE))
    part.publish()
    assert _wait_until(lambda: upload.persisted >= CHUNK)
    pair.stop("gcs")
    part.close(rows=1)
    thread.join(timeout=180)
    pair.start("gcs")
    error = outcome["error"]
    assert isinstance(error, StorageUnavailableError) and error.transient
    assert f"the upload of gs://{bucket.name}/p/" in str(error)
    assert "gave up after 1 s of retries: ConnectionError" in str(error)
    assert list(bucket.client.list_blobs(bucket.name)) == []
