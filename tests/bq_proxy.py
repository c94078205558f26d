"""An HTTP proxy in front of the BigQuery emulator that loses the answer to a job's insert.

A FAKE of a network fault that cannot be produced for real on demand: BigQuery creating a
job while its answer never reaches the client (a connection lost after the request was
sent, or a front end answering 5xx after the backend had accepted the job). The proxy
forwards the first ``jobs.insert`` of each job whose id matches a rule to the real
emulator, which creates and runs the job, then throws the emulator's answer away and
either closes the connection (``reset``: the client library resends the same insert) or
answers 503 ``jobInternalError`` (``error``: a reason the library does not retry, so the
task itself fails and Prefect retries it). Everything else passes through untouched.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

_JOB_ID = re.compile(rb'"jobId"\s*:\s*"([A-Za-z0-9_-]+)"')
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}
LOST_ANSWER = json.dumps(
    {
        "error": {
            "code": 503,
            "status": "UNAVAILABLE",
            "message": "the test proxy lost the answer to this insert (the job was created)",
            "errors": [{"reason": "jobInternalError", "message": "answer lost by the test proxy"}],
        }
    }
).encode()


class LosingProxy:
    """The proxy (a thread): ``rules`` maps a job-id regex to ``reset`` or ``error``.
    ``inserts[job_id]`` lists the emulator's status for each insert of that job (``None``
    for an insert the proxy did not forward)."""

    def __init__(self, upstream: str, rules: dict[str, str]) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rules = [(re.compile(pattern), mode) for pattern, mode in rules.items()]
        self.inserts: dict[str, list[int | None]] = defaultdict(list)
        self.lost: dict[str, str] = {}  # job id -> how its first answer was lost
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> LosingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _fault(self, method: str, path: str, body: bytes) -> tuple[str | None, str | None]:
        """The job id of a jobs.insert, and how to lose its answer (None: pass it on)."""
        if method != "POST" or not re.search(r"/projects/[^/]+/jobs(\?|$)", path):
            return None, None
        found = _JOB_ID.search(body)
        if not found:
            return None, None
        job_id = found.group(1).decode()
        with self._lock:
            if job_id in self.lost:
                return job_id, None
            for pattern, mode in self.rules:
                if pattern.search(job_id):
                    self.lost[job_id] = mode
                    return job_id, mode
        return job_id, None

    def _forward(
        self, method: str, path: str, headers: Any, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*self.upstream, timeout=120)
        try:
            sent = {k: v for k, v in headers.items() if k.lower() not in _HOP_HEADERS}
            sent["Content-Length"] = str(len(body))
            connection.request(method, path, body=body, headers=sent)
            answer = connection.getresponse()
            return answer.status, answer.getheaders(), answer.read()
        finally:
            connection.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                job_id, mode = proxy._fault(self.command, self.path, body)
                status, headers, data = proxy._forward(self.command, self.path, self.headers, body)
                if job_id:
                    with proxy._lock:
                        proxy.inserts[job_id].append(status)
                if mode == "reset":  # the job exists; its answer never arrives
                    self.close_connection = True
                    return
                if mode == "error":
                    status, headers, data = 503, [("Content-Type", "application/json")], LOST_ANSWER
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in _HOP_HEADERS:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        return Handler
