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
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STACK_SH = Path(__file__).resolve().parents[1] / "scripts" / "stack.sh"


def stack_sh(command: str, env: dict[str, str]) -> None:
    """Run ``scripts/stack.sh COMMAND`` with ``env`` (its ports, home, data); it must succeed."""
    result = subprocess.run(
        [str(STACK_SH), command], env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, f"stack.sh {command}: {result.stderr[-3000:]}"


def free_port() -> int:
    """A TCP port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


class PortTaken(RuntimeError):
    """What answers on a private pair's port belongs to another stack."""


def _state(pid: int) -> str:
    """The process's state letter (``T``: stopped), from ``/proc``."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


class PrivateEmulators:
    """fake-gcs-server and the BigQuery emulator on ports and data of their own.

    Started and stopped with ``scripts/stack.sh`` (the real services, really stopped),
    so a test may take them down without touching the shared stack others use.
    """

    def __init__(self) -> None:
        self.data = tempfile.mkdtemp(prefix="partyhelp-private-stack-")
        self._choose_ports()

    def _choose_ports(self) -> None:
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
        return {
            "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{self.gcs_port}",
            "BIGQUERY_EMULATOR_HOST": f"http://127.0.0.1:{self.bq_port}",
        }

    def _stack(self, command: str) -> None:
        stack_sh(command, {**os.environ, **self.env})

    def start(self, service: str) -> None:
        """Start ``gcs`` or ``bigquery`` and wait until it answers; ``PortTaken`` if what
        answers on its port is not ours (``stack.sh`` then refuses, naming the port's setting;
        ``owns`` checks again: a port can be taken between its check and our bind)."""
        result = subprocess.run(
            [str(STACK_SH), f"start-{service}"],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=180,
        )
        taken = "is not this stack's" in result.stderr
        assert result.returncode == 0 or taken, f"stack.sh start-{service}: {result.stderr[-3000:]}"
        if taken or not self.owns(service):
            raise PortTaken(f"{service}: port {self._port(service)} answers for another stack")

    def _port(self, service: str) -> int:
        return self.gcs_port if service == "gcs" else self.bq_port

    def owns(self, service: str) -> bool:
        """Whether the process recorded for ``service``'s port serves this pair's data: a
        port handed out by ``free_port`` can be taken by another pair before ours binds it,
        and freezing or stopping that one would test the wrong server."""
        try:
            cmdline = Path(f"/proc/{self._group(service)}/cmdline").read_bytes()
        except (OSError, ValueError):
            return False
        return f"{self.data}/".encode() in cmdline

    def stop(self, service: str) -> None:
        """Stop ``gcs`` or ``bigquery`` (its process group, for real)."""
        self._stack(f"stop-{service}")

    def _group(self, service: str) -> int:
        home = Path(
            os.environ.get("PARTYHELP_STACK_HOME", Path.home() / ".cache" / "partyhelp-stack")
        )
        return int((home / "run" / f"{service}-{self._port(service)}.pid").read_text().strip())

    def freeze(self, service: str) -> None:
        """Stall ``service`` for real: SIGSTOP its process group. Connections are still
        accepted by the kernel, but nothing answers (a hung server, not a dead one)."""
        group = self._group(service)
        os.killpg(group, signal.SIGSTOP)
        deadline = time.monotonic() + 5  # the signal is delivered asynchronously
        while _state(group) != "T":
            assert time.monotonic() < deadline, f"{service} (pid {group}) did not stop"
            time.sleep(0.05)

    def thaw(self, service: str) -> None:
        """Let a frozen ``service`` run again."""
        os.killpg(self._group(service), signal.SIGCONT)

    def is_up(self, service: str) -> bool:
        """Whether the service's port accepts connections."""
        with socket.socket() as sock:
            sock.settimeout(1)
            return sock.connect_ex(("127.0.0.1", self._port(service))) == 0

    def start_all(self, attempts: int = 3) -> None:
        """Both services (GCS first: the BigQuery emulator reads gs:// from it), on new
        ports when one of ours was taken meanwhile."""
        for attempt in range(attempts):
            try:
                self.start("gcs")
                self.start("bigquery")
                return
            except PortTaken:
                if attempt == attempts - 1:
                    raise
                self.stop_all()
                self._choose_ports()

    def stop_all(self) -> None:
        """Both services that are ours, ignoring one that is already down."""
        for service in ("bigquery", "gcs"):
            if self.owns(service):
                subprocess.run(
                    [str(STACK_SH), f"stop-{service}"],
                    env={**os.environ, **self.env},
                    capture_output=True,
                    timeout=180,
                    check=False,
                )


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
