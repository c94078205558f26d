"""The local stack restarts reliably and never takes a stranger's port (issue 19, section 2).

- A service killed from outside (SIGKILL: no clean-up, its pid file left behind) comes back
  with one ``scripts/stack.sh start-SVC``, five times in a row, for each service.
- A port answered by a server the stack did not start (any program, or the same emulator
  serving other data) stops ``start-SVC`` with an error naming the port's setting; that server
  is left running.

Every service here is a real one, started by ``scripts/stack.sh`` in a stack home, data dir
and ports of this test's own (the installs are the shared stack's, linked, read only), so the
shared stack is never touched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.emulators import STACK_SH, free_port

pytestmark = pytest.mark.services  # starts services of its own (tests/conftest.py)

SHARED_HOME = Path(
    os.environ.get("PARTYHELP_STACK_HOME", Path.home() / ".cache" / "partyhelp-stack")
)
PORT_VARS = {
    "gcs": "PARTYHELP_GCS_PORT",
    "bigquery": "PARTYHELP_BQ_PORT",
    "prefect": "PARTYHELP_PREFECT_PORT",
}
HEALTH = {
    "gcs": "/storage/v1/b",
    "bigquery": "/bigquery/v2/projects/demo/datasets",
    "prefect": "/api/health",
}


class PrivateStack:
    """A stack home of its own: run/ (pid files, lock), logs/, Prefect's home, data, ports."""

    def __init__(self, root: Path) -> None:
        self.home = root / "home"
        self.home.mkdir()
        for install in ("bigquery-venv", "bigquery-home"):  # the emulator's venv, extensions
            (self.home / install).symlink_to(SHARED_HOME / install)
        self.env = {
            **os.environ,
            "PARTYHELP_STACK_HOME": str(self.home),
            "PARTYHELP_STACK_DATA": str(root / "data"),
            "PARTYHELP_BQ_GRPC_PORT": str(free_port()),
            **{var: str(free_port()) for var in PORT_VARS.values()},
        }

    def port(self, service: str) -> int:
        return int(self.env[PORT_VARS[service]])

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(STACK_SH), *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    def pid(self, service: str) -> int:
        return int((self.home / "run" / f"{service}-{self.port(service)}.pid").read_text())

    def answers(self, service: str) -> bool:
        url = f"http://127.0.0.1:{self.port(service)}{HEALTH[service]}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return bool(response.status == 200)
        except OSError:
            return False


@pytest.fixture
def private_stack(tmp_path: Path) -> Iterator[PrivateStack]:
    stack = PrivateStack(tmp_path)
    yield stack
    for service in PORT_VARS:
        stack.run(f"stop-{service}")


def wait_gone(pid: int) -> None:
    """Until ``pid`` has exited (a zombie counts: it holds no port and no file)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return
        if state == "Z":
            return
        assert time.monotonic() < deadline, f"pid {pid} still runs after SIGKILL"
        time.sleep(0.05)


@pytest.mark.parametrize(
    "service", ["gcs", "bigquery", pytest.param("prefect", marks=pytest.mark.slow)]
)  # Prefect: ~40 s
def test_a_service_killed_from_outside_restarts_the_first_time_five_times(
    private_stack: PrivateStack, service: str, tmp_path: Path
) -> None:
    # A busy machine, for real: the new process records its pid half a second late (BASH_ENV
    # runs in the launcher's bash before its `echo $$ >pidfile`), the window in which the
    # killed process's pid file used to be read, judged dead, and the new process stopped.
    slow_launcher = tmp_path / "slow-launcher.sh"
    slow_launcher.write_text("[[ $0 != *.pid ]] || sleep 0.5\n")
    started = private_stack.run(f"start-{service}")
    assert started.returncode == 0, started.stderr[-3000:]

    for attempt in range(1, 6):
        killed = private_stack.pid(service)
        os.kill(killed, signal.SIGKILL)
        wait_gone(killed)
        assert not private_stack.answers(service)

        result = private_stack.run(f"start-{service}", BASH_ENV=str(slow_launcher))

        assert result.returncode == 0, f"attempt {attempt}: {result.stderr[-3000:]}"
        assert f"{service} up on 127.0.0.1:{private_stack.port(service)}" in result.stderr
        assert private_stack.pid(service) != killed
        assert private_stack.answers(service), f"attempt {attempt}"

    # Its own server, already up, is recognised and kept: same process, no second start.
    running = private_stack.pid(service)
    again = private_stack.run(f"start-{service}")
    assert again.returncode == 0, again.stderr
    assert (
        f"{service} already answers on 127.0.0.1:{private_stack.port(service)} "
        f"(pid {running})" in again.stderr
    )
    assert private_stack.pid(service) == running


@pytest.mark.parametrize("service", ["gcs", "bigquery", "prefect"])
def test_a_port_another_program_answers_on_is_refused_naming_its_setting(
    private_stack: PrivateStack, service: str, tmp_path: Path
) -> None:
    port = private_stack.port(service)
    stranger = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not answers_http(port):
            assert time.monotonic() < deadline, "the http.server did not start"
            time.sleep(0.1)

        result = private_stack.run(f"start-{service}")
        status = private_stack.run("status", service)

        assert result.returncode == 1, result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith(
            f"[stack] ERROR: {service}: 127.0.0.1:{port} is held by a server "
            f"that is not this stack's {service} (pid {stranger.pid}: "
        ), last
        assert last.endswith(f"Set {PORT_VARS[service]} to a free port, or stop that server")
        assert "launched" not in result.stderr
        assert stranger.poll() is None and answers_http(port)  # left alone
        assert status.returncode == 1
    finally:
        stranger.terminate()
        stranger.wait(timeout=10)


def answers_http(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
            return True
    except OSError:
        return False


def test_the_same_emulator_serving_other_data_is_not_taken_for_this_stack_s(
    private_stack: PrivateStack, tmp_path: Path
) -> None:
    """Another emulator: the stack's own fake-gcs-server, started for another data dir on the
    port this one wants (e.g. a second checkout, or the tests' private pair)."""
    first = private_stack.run("start-gcs")
    assert first.returncode == 0, first.stderr
    pid = private_stack.pid("gcs")

    other = private_stack.run("start-gcs", PARTYHELP_STACK_DATA=str(tmp_path / "other-data"))

    assert other.returncode == 1, other.stderr
    assert "is not this stack's gcs" in other.stderr and "PARTYHELP_GCS_PORT" in other.stderr
    assert private_stack.pid("gcs") == pid and private_stack.answers("gcs")
    assert not (tmp_path / "other-data").exists()
