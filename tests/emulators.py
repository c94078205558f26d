"""Private emulator pairs and the small environment helpers they need.

Imports nothing of the tests' own, so ``conftest`` and ``faultkit`` can both use it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STACK_SH = Path(__file__).resolve().parents[1] / "scripts" / "stack.sh"


def stack_sh(command: str, env: dict[str, str]) -> None:
    """Run ``scripts/stack.sh COMMAND`` with ``env`` (its ports, home, data); it must succeed."""
    result = subprocess.run([str(STACK_SH), command], env=env, capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, f"stack.sh {command}: {result.stderr[-3000:]}"


def free_port() -> int:
    """A TCP port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def env_vars(env: dict[str, str]) -> Iterator[None]:
    """``os.environ`` updated with ``env`` for the block, then restored."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class PrivateEmulators:
    """fake-gcs-server and the BigQuery emulator on ports and data of their own.

    Started and stopped with ``scripts/stack.sh`` (the real services, really stopped),
    so a test may take them down without touching the shared stack others use.
    """

    def __init__(self) -> None:
        self.data = tempfile.mkdtemp(prefix="partyhelp-private-stack-")
        self.gcs_port, self.bq_port, self.grpc_port = free_port(), free_port(), free_port()
        self.env = {
            "PARTYHELP_GCS_PORT": str(self.gcs_port),
            "PARTYHELP_BQ_PORT": str(self.bq_port),
            "PARTYHELP_BQ_GRPC_PORT": str(self.grpc_port),
            "PARTYHELP_STACK_DATA": self.data,
        }

    @property
    def client_env(self) -> dict[str, str]:
        """The variables that point the sync (and the tests' clients) at these emulators."""
        return {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{self.gcs_port}",
                "BIGQUERY_EMULATOR_HOST": f"http://127.0.0.1:{self.bq_port}"}

    def _stack(self, command: str) -> None:
        stack_sh(command, {**os.environ, **self.env})

    def start(self, service: str) -> None:
        """Start ``gcs`` or ``bigquery`` and wait until it answers."""
        self._stack(f"start-{service}")

    def stop(self, service: str) -> None:
        """Stop ``gcs`` or ``bigquery`` (its process group, for real)."""
        self._stack(f"stop-{service}")

    def _group(self, service: str) -> int:
        home = Path(os.environ.get("PARTYHELP_STACK_HOME",
                                   Path.home() / ".cache" / "partyhelp-stack"))
        port = self.gcs_port if service == "gcs" else self.bq_port
        return int((home / "run" / f"{service}-{port}.pid").read_text().strip())

    def freeze(self, service: str) -> None:
        """Stall ``service`` for real: SIGSTOP its process group. Connections are still
        accepted by the kernel, but nothing answers (a hung server, not a dead one)."""
        os.killpg(self._group(service), signal.SIGSTOP)

    def thaw(self, service: str) -> None:
        """Let a frozen ``service`` run again."""
        os.killpg(self._group(service), signal.SIGCONT)

    def is_up(self, service: str) -> bool:
        """Whether the service's port accepts connections."""
        port = self.gcs_port if service == "gcs" else self.bq_port
        with socket.socket() as sock:
            sock.settimeout(1)
            return sock.connect_ex(("127.0.0.1", port)) == 0

    def start_all(self) -> None:
        """Both services (GCS first: the BigQuery emulator reads gs:// from it)."""
        self.start("gcs")
        self.start("bigquery")

    def stop_all(self) -> None:
        """Both services, ignoring one that is already down."""
        for service in ("bigquery", "gcs"):
            subprocess.run([str(STACK_SH), f"stop-{service}"], env={**os.environ, **self.env},
                           capture_output=True, timeout=180, check=False)


@contextmanager
def private_emulators() -> Iterator[PrivateEmulators]:
    """A private pair, started, with ``os.environ`` pointing at it for the block (the flow,
    new buckets and the tests' clients all follow), stopped and wiped afterwards.

    A module on its own pair depends neither on what else the shared emulators hold (the
    BigQuery emulator slows as its catalog grows) nor on anyone else's outages.
    """
    pair = PrivateEmulators()
    try:
        pair.start_all()
        with env_vars(pair.client_env):
            yield pair
    finally:
        pair.stop_all()
        shutil.rmtree(pair.data, ignore_errors=True)
