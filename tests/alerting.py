"""A Prefect server of a test's own, and a real HTTP receiver for its notifications.

Automations, deployments' concurrency limits and global concurrency limits are server-wide:
a module that creates them under their production names runs its own server (started by
``scripts/stack.sh`` like the stack's, on a free port, in a temporary PREFECT_HOME), so no
other test session's runs trigger them, and nothing is left on the shared one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.emulators import env_vars, free_port, stack_sh


@contextmanager
def private_prefect_server(**server_env: str) -> Iterator[str]:
    """A Prefect server (`scripts/stack.sh start-prefect`) on a free port; yields its API URL.

    ``server_env``: settings of that server only, e.g. shorter service loops for a test.
    """
    home = tempfile.mkdtemp(prefix="partyhelp-prefect-")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PARTYHELP_STACK_HOME": home,
        "PARTYHELP_PREFECT_PORT": str(port),
        "PREFECT_API_URL": url,
        **server_env,
    }

    stack_sh("start-prefect", env)
    try:
        yield url
    finally:
        stack_sh("stop-prefect", env)
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def using_prefect_server(url: str) -> Iterator[None]:
    """This process's Prefect client, and every process it starts, talk to ``url``.

    The process's background services (the events worker and its kin) keep the server they
    first connected to: they are drained on the way in and out, so that they start again
    with the server of the moment (this one, then the session's).
    """
    from prefect.events.worker import EventsWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    EventsWorker.drain_all(timeout=30, at_exit=False)
    with env_vars({"PREFECT_API_URL": url}), temporary_settings({PREFECT_API_URL: url}):
        try:
            yield
        finally:
            EventsWorker.drain_all(timeout=30, at_exit=False)


class NotificationReceiver:
    """An HTTP server on 127.0.0.1, in a thread, that keeps the JSON body of every POST."""

    def __init__(self) -> None:
        self._bodies: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        received = self._received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received(json.loads(self.rfile.read(length) or b"{}"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/notify"

    def _received(self, body: dict[str, Any]) -> None:
        with self._lock:
            self._bodies.append(body)

    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._bodies)

    def wait_for(
        self, what: str, matches: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any]:
        """The first body received that ``matches``, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [body for body in self.bodies() if matches(body)]
            if found:
                return found[0]
            time.sleep(0.5)
        raise AssertionError(
            f"no notification {what} within {timeout:.0f}s; received: "
            f"{json.dumps(self.bodies(), indent=1)[-4000:]}"
        )

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
