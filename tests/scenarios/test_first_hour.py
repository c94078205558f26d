"""An operator's first hour (issue 12, sections 1 and 2): no silent minutes, a sync by hand.

- ``scripts/stack.sh env --demo`` gives a shell the venv, the emulators, the demo's ten
  ``PARTYHELP_*`` settings (held only there: ``scripts/demo.sh`` takes them from it) and the
  stack's Prefect server; a shell started with nothing but ``PATH`` and ``HOME`` then runs
  the README's commands as typed against the running stack.
- ``with_ticker`` (``scripts/stack.sh``, around every install step and the demo's steps)
  never lets ten seconds pass without a line, with the elapsed time; a failing step's log tail
  and exit code come through.
- The install takes the hash-checked ``requirements-dev.lock`` when there is one.
- On a machine without Python 3.13 the demo stops in seconds, saying why and what to do.

Each command runs for real (bash, pip's venv, MariaDB, fake-gcs-server, the BigQuery emulator);
no test here installs anything or runs a whole sync.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import secrets
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from partyhelp_pipeline.settings import load_settings
from tests.conftest import ROOT, admin_connection

STACK_SH = ROOT / "scripts" / "stack.sh"
BASH = shutil.which("bash") or "/bin/bash"
BARE_PATH = "/usr/bin:/bin"  # no pyenv, no .venv: a new user's shell
DEMO_SETTINGS = {
    "PARTYHELP_MYSQL_HOST": "127.0.0.1",
    "PARTYHELP_MYSQL_PORT": "3306",
    "PARTYHELP_MYSQL_DATABASE": "partyhelp_demo",
    "PARTYHELP_MYSQL_USER": "partyhelp_reader",
    "PARTYHELP_MYSQL_PASSWORD": "demo-reader-password",
    "PARTYHELP_GCS_BUCKET": "partyhelp-demo",
    "PARTYHELP_GCS_PREFIX": "partyhelp",
    "PARTYHELP_BQ_PROJECT": "partyhelp-local",
    "PARTYHELP_BQ_DATASET": "partyhelp",
    "PARTYHELP_BQ_LOCATION": "australia-southeast1",
}


def bare_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a fresh login: PATH and HOME only (plus ``extra``), and the stack's
    Prefect auth string when it runs authenticated (as CI's does): set in one's login, as the
    README says, so that the ``eval`` gives the clients the string."""
    auth = os.environ.get("PARTYHELP_PREFECT_AUTH_STRING")
    login = {"PARTYHELP_PREFECT_AUTH_STRING": auth} if auth else {}
    return {"PATH": BARE_PATH, "HOME": str(home), **login, **extra}


def shell_after_eval(home: Path, **extra: str) -> dict[str, str]:
    """The environment a bare shell has after ``eval "$(scripts/stack.sh env --demo)"``."""
    result = subprocess.run(
        [BASH, "-c", 'eval "$(scripts/stack.sh env --demo)" && env -0'],
        cwd=ROOT,
        env=bare_env(home, **extra),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return dict(item.split("=", 1) for item in result.stdout.split("\0") if item)


def timed_lines(
    command: list[str], env: dict[str, str], timeout: float = 60
) -> tuple[int, list[tuple[float, str]], float]:
    """Runs ``command`` (stdout and stderr together); its exit code, each line with the
    seconds since the start when it arrived, and the seconds it took in all."""
    start = time.monotonic()
    with subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        assert process.stdout is not None
        lines = [(time.monotonic() - start, line.rstrip("\n")) for line in process.stdout]
        rc = process.wait(timeout=timeout)
    return rc, lines, time.monotonic() - start


def longest_silence(lines: list[tuple[float, str]], total: float) -> float:
    """The longest stretch without a line, from the start to the end of the command."""
    moments = [0.0, *(at for at, _ in lines), total]
    return max(later - earlier for earlier, later in itertools.pairwise(moments))


# ------------------------------------------------------------ section 2: a sync by hand


def test_env_demo_gives_the_venv_the_emulators_the_demo_settings_and_the_stack_server(
    tmp_path: Path,
) -> None:
    env = shell_after_eval(tmp_path)

    assert env["VIRTUAL_ENV"] == str(ROOT / ".venv")
    assert env["PATH"].split(":")[0] == str(ROOT / ".venv" / "bin")
    settings = {k: v for k, v in env.items() if k.startswith("PARTYHELP_")}
    settings.pop("PARTYHELP_PREFECT_AUTH_STRING", None)  # the login's, when the stack's is on
    assert settings == DEMO_SETTINGS
    assert env["STORAGE_EMULATOR_HOST"] == "http://127.0.0.1:4443"
    assert env["BIGQUERY_EMULATOR_HOST"] == "http://127.0.0.1:9050"
    assert env["PREFECT_API_URL"] == "http://127.0.0.1:4200/api"  # the stack's, not a temporary one
    settings = load_settings(env)
    assert (settings.mysql.database, settings.gcs_bucket) == ("partyhelp_demo", "partyhelp-demo")
    assert settings.uses_emulators
    # One place: the demo takes its values from `env --demo` and spells none of them itself.
    demo_sh = (ROOT / "scripts" / "demo.sh").read_text(encoding="utf-8")
    assert 'eval "$(scripts/stack.sh env --demo)"' in demo_sh
    assert [v for v in DEMO_SETTINGS.values() if len(v) > 9 and v in demo_sh] == []


def test_a_value_already_set_wins_over_the_demo_default(tmp_path: Path) -> None:
    env = shell_after_eval(tmp_path, PARTYHELP_MYSQL_DATABASE="my_copy")
    assert env["PARTYHELP_MYSQL_DATABASE"] == "my_copy"
    assert env["PARTYHELP_GCS_BUCKET"] == "partyhelp-demo"


@pytest.fixture
def demo_copy() -> Iterator[dict[str, str]]:
    """A database, bucket and dataset of this test's own in place of the demo's (the
    database and bucket dropped after; the dataset's metrics history is its own too)."""
    name = f"ph_first_hour_{secrets.token_hex(4)}"
    names = {
        "PARTYHELP_MYSQL_DATABASE": name,
        "PARTYHELP_GCS_BUCKET": name.replace("_", "-"),
        "PARTYHELP_BQ_DATASET": name,
    }
    yield names
    with admin_connection() as connection, connection.cursor() as cursor:
        for host in ("localhost", "127.0.0.1"):
            with contextlib.suppress(pymysql.err.MySQLError):  # no grant when setup failed
                cursor.execute(
                    f"REVOKE ALL PRIVILEGES ON `{name}`.* FROM "
                    f"'{DEMO_SETTINGS['PARTYHELP_MYSQL_USER']}'@'{host}'"
                )
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    # The stack's fake-gcs-server, which `env --demo` names (the session's private one is not).
    with contextlib.suppress(Exception):
        client = storage.Client(
            project="partyhelp-local",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": "http://127.0.0.1:4443"},
        )
        client.bucket(names["PARTYHELP_GCS_BUCKET"]).delete(force=True)


def test_a_bare_shell_runs_the_readme_commands_after_one_eval(
    stack: None, tmp_path: Path, demo_copy: dict[str, str]
) -> None:
    """The README's lines, as typed, in a shell with PATH and HOME only (and this test's
    own database and bucket names, so the demo's are left alone)."""
    script = """eval "$(scripts/stack.sh env --demo)"
python -m scripts.demo_setup --scale 0.05
python -m flows.partyhelp_sync --help
python -m flows.partyhelp_sync check
"""
    result = subprocess.run(
        [BASH, "-euc", script],
        cwd=ROOT,
        env=bare_env(tmp_path, **demo_copy),
        capture_output=True,
        text=True,
        timeout=300,
    )

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "usage: python -m flows.partyhelp_sync" in output
    checks = [line for line in result.stdout.splitlines() if line.startswith(("ok", "FAIL"))]
    assert len(checks) >= 7
    assert [line for line in checks if not line.startswith("ok")] == []
    assert f"SELECT only on `{demo_copy['PARTYHELP_MYSQL_DATABASE']}`" in output
    assert "No module named" not in output
    assert "temporary server" not in output  # the stack's Prefect server, named by the eval


def test_the_stack_s_prefect_server_answers_at_the_url_env_demo_gives(
    stack: None, tmp_path: Path
) -> None:
    url = shell_after_eval(tmp_path)["PREFECT_API_URL"]
    with urllib.request.urlopen(f"{url}/health", timeout=10) as response:
        assert response.status == 200


# ------------------------------------------------------------ section 1: no silent minutes


def test_with_ticker_never_leaves_ten_seconds_without_a_line(tmp_path: Path) -> None:
    """A silent 11-second step, under the real 10-second tick."""
    rc, lines, total = timed_lines(
        [BASH, "-c", 'source scripts/stack.sh; with_ticker "resting on purpose" sleep 11'],
        env=bare_env(tmp_path),
    )

    texts = [text for _, text in lines]
    assert rc == 0
    assert texts[0] == "[stack] resting on purpose"
    assert any(
        t.startswith("[stack] still resting on purpose (1") and t.endswith(" s)") for t in texts
    ), texts
    assert texts[-1].startswith("[stack] resting on purpose: done in 1")
    assert longest_silence(lines, total) < 12, lines


def test_with_ticker_logs_a_step_shows_its_progress_and_its_failure(tmp_path: Path) -> None:
    """With --log, the output goes to the file; the tick lines quote its latest line that
    tells progress (pip's package list counted, its warnings skipped); a failure keeps its
    exit code and shows the log's last lines."""
    log = tmp_path / "step.log"
    step = (
        "echo 'Installing collected packages: attrs, idna, six'; echo 'WARNING: a mirror'; "
        "sleep 3.5; echo 'broken wheel'; exit 3"
    )
    rc, lines, total = timed_lines(
        [
            BASH,
            "-c",
            f'source scripts/stack.sh; with_ticker "installing" --log {log} bash -c "$STEP"',
        ],
        env=bare_env(tmp_path, PARTYHELP_TICK_SECONDS="1", STEP=step),
    )

    texts = [text for _, text in lines]
    assert rc == 3
    assert texts[0] == "[stack] installing (log: ~/step.log)"  # under HOME, shown as ~
    ticks = [t for t in texts if t.startswith("[stack] still installing (")]
    quoting_the_list = [t for t in ticks if t.endswith(" s): Installing 3 collected packages")]
    assert len(quoting_the_list) >= 2, ticks
    assert [t for t in ticks if "WARNING" in t] == []
    assert any(t.startswith("[stack] installing: FAILED (exit 3) after ") for t in texts)
    assert texts[-1] == "broken wheel"  # the log's tail, after the failure
    assert log.read_text() == (
        "Installing collected packages: attrs, idna, six\nWARNING: a mirror\nbroken wheel\n"
    )
    assert longest_silence(lines, total) < 3, lines


# ------------------------------------------------ issue 19, section 3: only what the demo needs


def missing_packages(tmp_path: Path, *option: str) -> list[str]:
    """``missing_packages`` of the real script, on a machine without the browser."""
    script = f'source scripts/stack.sh; CHROMIUM={tmp_path}/no-chromium; missing_packages "$@"'
    return subprocess.run(
        [BASH, "-c", script, "bash", *option],
        cwd=ROOT,
        env=bare_env(tmp_path),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()


def test_the_demo_installs_no_browser_and_the_tests_do(tmp_path: Path) -> None:
    assert "chromium" not in missing_packages(tmp_path)
    assert "chromium" in missing_packages(tmp_path, "--with-browser")
    demo_sh = (ROOT / "scripts" / "demo.sh").read_text(encoding="utf-8")
    test_sh = (ROOT / "scripts" / "test.sh").read_text(encoding="utf-8")
    runs = [
        line.split("#")[0].split()
        for line in demo_sh.splitlines()
        if "scripts/stack.sh install" in line.split("#")[0]
    ]
    assert runs and all("--with-browser" not in words for words in runs), runs
    assert "\nscripts/stack.sh install --with-browser" in test_sh


def test_apt_gets_output_goes_to_the_step_s_log_and_the_console_keeps_one_line_a_step(
    tmp_path: Path,
) -> None:
    """``apt_install_missing`` for real, around a stand-in ``apt-get`` on PATH: the real one
    would install chromium (480 MB) on this machine. The stand-in prints as apt-get does,
    dpkg's carriage-return progress included, and pauses past a tick."""
    if subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip() != "0":
        pytest.skip("as_root runs apt-get directly only as root (else through sudo)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text(
        '#!/bin/bash\necho "$*" >>"$APT_CALLS"\n'
        'for i in $(seq 300); do echo "Get:$i http://deb.debian.org/debian main lib$i"; done\n'
        'printf "(Reading database ... \\r(Reading database ... 50%%\\r'
        '(Reading database ... 100%%\\n"\n'
        'echo "Unpacking chromium (126.0) ..."; sleep 2.5\n'
        'echo "Setting up chromium (126.0) ..."\n'
    )
    (bin_dir / "apt-get").chmod(0o755)
    calls, home = tmp_path / "apt-calls", tmp_path / "stack"
    rc, lines, total = timed_lines(
        [
            BASH,
            "-c",
            f"source scripts/stack.sh; CHROMIUM={tmp_path}/no-chromium; "
            "apt_install_missing --with-browser",
        ],
        env=bare_env(
            tmp_path,
            PATH=f"{bin_dir}:{BARE_PATH}",
            APT_CALLS=str(calls),
            PARTYHELP_STACK_HOME=str(home),
            PARTYHELP_TICK_SECONDS="1",
        ),
    )

    texts = [text for _, text in lines]
    assert rc == 0, texts
    assert calls.read_text().splitlines() == ["update", "install -y chromium"]
    assert [t for t in texts if not t.startswith("[stack] ")] == []  # nothing of apt-get's
    assert (
        texts[0] == "[stack] updating Debian's package lists (apt-get update) "
        "(log: ~/stack/logs/install-apt-update.log)"
    )
    assert (
        "[stack] installing Debian packages chromium (apt-get install) "
        "(log: ~/stack/logs/install-apt.log)" in texts
    )
    assert any(t.endswith(" s): Unpacking chromium (126.0) ...") for t in texts), texts
    assert len(texts) < 12, texts
    log = (home / "logs" / "install-apt.log").read_bytes().decode().split("\n")[:-1]
    assert len(log) == 303 and log[-1] == "Setting up chromium (126.0) ..."
    assert longest_silence(lines, total) < 2.5, lines


def test_install_takes_the_hash_locked_requirements_when_there_are_some(tmp_path: Path) -> None:
    def requirements() -> str:
        return subprocess.run(
            [BASH, "-c", f"source scripts/stack.sh; REPO_ROOT={tmp_path}; dev_requirements"],
            cwd=ROOT,
            env=bare_env(tmp_path),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    assert requirements() == "-r requirements-dev.txt"
    (tmp_path / "requirements-dev.lock").write_text("")
    assert requirements() == "--require-hashes -r requirements-dev.lock"


def test_the_pip_that_installs_the_lock_comes_from_the_lock_first(tmp_path: Path) -> None:
    """An older pip (< 23.3) rejects the hash-checked lock, so ``install`` first upgrades
    ``.venv``'s pip from the lock's own entry: that entry alone, with its hashes."""
    entry = subprocess.run(
        [BASH, "-c", "source scripts/stack.sh; locked_pip requirements-dev.lock"],
        cwd=ROOT,
        env=bare_env(tmp_path),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    pinned = next(
        line.split("==")[1]
        for line in (ROOT / "requirements-dev.txt").read_text().splitlines()
        if line.startswith("pip==")
    )
    assert entry[0] == f"pip=={pinned} \\"
    hashes = [line for line in entry[1:] if line.strip().startswith("--hash=sha256:")]
    assert len(hashes) >= 2 and all(line.startswith(" ") for line in entry[1:]), entry


def test_without_python_3_13_the_demo_says_why_and_what_to_do_at_once(tmp_path: Path) -> None:
    if shutil.which("python3.13", path=BARE_PATH):
        pytest.skip("this machine has a python3.13 on its standard PATH")
    stack_home = tmp_path / "stack"
    rc, lines, total = timed_lines(
        [str(ROOT / "scripts" / "demo.sh")],
        env=bare_env(tmp_path, PARTYHELP_STACK_HOME=str(stack_home), PARTYHELP_PYTHON313=""),
    )

    output = "\n".join(text for _, text in lines)
    assert rc == 1, output
    assert total < 15, output  # before any other install step
    assert "the local BigQuery emulator needs Python 3.13, and none was found" in output
    assert "why: local-bigquery requires Python >= 3.13" in output
    assert "pyenv install 3.13.0" in output and "export PARTYHELP_PYTHON313=" in output
    assert re.fullmatch(r"\[demo\] FAILED \(exit 1\) after \d+ s: install \d+ s", lines[-1][1])
    assert not (stack_home / "bigquery-venv").exists()
