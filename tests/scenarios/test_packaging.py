"""The project is an installable package: ``pip install .`` builds a wheel of
``partyhelp_pipeline`` (with ``partyhelp_pipeline.spec``), ``tasks`` and ``flows`` and the
``partyhelp-sync`` command, and nothing else of the checkout (no tests, scripts, sql).

The wheel is built offline from a copy of what a clean clone holds (setuptools comes from
requirements-dev.txt, so no build isolation and no index is needed). Its dependencies are
pyproject.toml's ranges, with mysqlclient and isal in ``[fast]`` and the Dask runner in
``[dask]``; and it installs and syncs on a machine with no compiler and no MySQL headers
(issue 18).
"""

from __future__ import annotations

import configparser
import os
import re
import secrets
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from partyhelp_pipeline.clients import bigquery_client
from partyhelp_pipeline.settings import load_settings
from partyhelp_pipeline.spec import TABLES
from tests.conftest import ROOT, admin_connection, create_bucket, sync_environment

PACKAGES = ("partyhelp_pipeline", "tasks", "flows")
DISTRIBUTION = "partyhelp-bigquery-sync"
COMMAND = "partyhelp-sync"
COMMAND_TARGET = "flows.partyhelp_sync:main"


def repository_files() -> list[str]:
    """The files a clean clone holds (tracked or new, not ignored), relative to the repo."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [p for p in out.splitlines() if (ROOT / p).is_file()]


def clean_checkout(dest: Path) -> Path:
    """A copy of the checkout as a fresh clone has it: no .venv, caches or build output."""
    for path in repository_files():
        (dest / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / path, dest / path)
    return dest


def build_wheel(source: Path, dist: Path) -> Path:
    """``pip wheel`` of the project at ``source`` into ``dist``, offline; the wheel's path."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--wheel-dir",
            str(dist),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")},
    )
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    [wheel] = dist.glob("*.whl")
    return wheel


def declared_requirements() -> set[str]:
    """pyproject.toml's requirements as a wheel's metadata states them: the base ones, and
    each extra's with ``extra == "NAME"`` (none of them has a marker of its own)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra, requirements in project["optional-dependencies"].items():
        assert not any(";" in r for r in requirements), "combine the markers here"
        lines += [f'{r}; extra == "{extra}"' for r in requirements]
    return {str(Requirement(line)) for line in lines}


def test_wheel_holds_the_packages_and_the_command(tmp_path: Path) -> None:
    wheel = build_wheel(clean_checkout(tmp_path / "checkout"), tmp_path / "dist")
    assert wheel.name.startswith(DISTRIBUTION.replace("-", "_") + "-")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        [dist_info] = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
        metadata = archive.read(f"{dist_info}/METADATA").decode()

    # Every module of the three packages, subpackages included, and no other Python file.
    modules = {n for n in names if n.endswith(".py")}
    expected = {p for p in repository_files() if p.endswith(".py") and p.split("/")[0] in PACKAGES}
    assert modules == expected, (
        f"missing from the wheel (a package not listed in pyproject.toml?): "
        f"{sorted(expected - modules)}; not ours: {sorted(modules - expected)}"
    )
    assert {
        "partyhelp_pipeline/spec/__init__.py",
        "flows/partyhelp_sync.py",
        "tasks/__init__.py",
    } <= modules
    assert "partyhelp_pipeline/py.typed" in names
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top_level == set(PACKAGES), "only the three packages go into site-packages"
    assert not any(re.match(r"(tests|scripts|benchmarks|sql|docs)/", n) for n in names)

    # The command, and the dependencies: exactly pyproject.toml's ranges and extras.
    scripts = configparser.ConfigParser()
    scripts.read_string(entry_points)
    assert dict(scripts["console_scripts"]) == {COMMAND: COMMAND_TARGET}
    requires = {
        str(Requirement(line.removeprefix("Requires-Dist: ").strip()))
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:")
    }
    assert requires == declared_requirements()
    assert {
        line.removeprefix("Provides-Extra: ").strip()
        for line in metadata.splitlines()
        if line.startswith("Provides-Extra:")
    } == {"fast", "dask"}
    # Nothing that needs a compiler or MySQL's headers, unless an extra asks for it.
    base = {Requirement(r).name.lower() for r in requires if "extra ==" not in r}
    assert "pymysql" in base and not base & {"mysqlclient", "isal", "prefect-dask", "dask"}
    assert any(r.startswith("pymysql[rsa]") for r in map(str.lower, requires))


def test_console_script_prints_its_usage(tmp_path: Path) -> None:
    """The command the project installs into .venv (scripts/stack.sh install) runs ``--help``
    from anywhere, without PYTHONPATH."""
    command = Path(sys.executable).with_name(COMMAND)
    assert command.is_file(), f"no {command}: run scripts/stack.sh install (pip install -e .)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    result = subprocess.run(
        [str(command), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("usage: ")
    for option in ("--date", "--tables", "--from-exports", "backfill"):
        assert option in result.stdout


# ------------------------------------------------------------------ a machine without headers

# What would let pip build mysqlclient (or any C extension) from source: none of it may be on
# the fresh venv's PATH, so the install below proves the package needs none of it.
BUILD_TOOLS = (
    "gcc",
    "cc",
    "c++",
    "g++",
    "clang",
    "make",
    "pkg-config",
    "pkgconf",
    "mysql_config",
    "mariadb_config",
)
FAST_MISSING = "pip install 'partyhelp-bigquery-sync[fast]'"
DASK_MISSING = "pip install 'partyhelp-bigquery-sync[dask]'"


def bare_environment(venv: Path, tools: Path) -> dict[str, str]:
    """os.environ (the stack's emulators and Prefect server) with PATH only the venv's bin
    and ``tools``, and no PYTHON* variable (no PYTHONPATH back into this checkout)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "VIRTUAL_ENV", "CC", "CFLAGS", "LDFLAGS", "PKG_"))
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{tools}"
    found = {tool: shutil.which(tool, path=env["PATH"]) for tool in BUILD_TOOLS}
    assert not any(found.values()), f"build tools on the bare PATH: {found}"
    return env


def install_without_headers(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A fresh venv holding the wheel and requirements.txt's hash-checked base lock, every
    dependency a wheel (``--only-binary :all:``: nothing is built, nothing could be); pip
    is .venv's, pointed at the venv (``--python``): no pip or setuptools in the venv."""
    wheel = build_wheel(clean_checkout(tmp_path / "checkout"), tmp_path / "dist")
    venv, tools = tmp_path / "venv", tmp_path / "tools"
    tools.mkdir()  # the only other folder on PATH, and empty: nothing else is needed
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    env = bare_environment(venv, tools)
    pip = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(venv / "bin" / "python"),
        "--disable-pip-version-check",
    ]
    for args in (
        [
            "install",
            "--quiet",
            "--only-binary",
            ":all:",
            "--require-hashes",
            "-r",
            str(ROOT / "requirements.txt"),
        ],
        ["install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        ["check"],
    ):
        result = subprocess.run(pip + args, env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, (
            f"pip {args[0]}: {result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return venv, env


def run_command(
    venv: Path, env: dict[str, str], *args: str, **settings: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / COMMAND), *args],
        cwd=venv,
        env={**env, **settings},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_the_wheel_installs_and_syncs_without_a_compiler_or_mysql_headers(
    tmp_path: Path, source_db: dict[str, Any]
) -> None:
    venv, env = install_without_headers(tmp_path)
    probe = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import importlib.util as u; print([m for m in ('MySQLdb', 'isal', 'prefect_dask', "
            "'pymysql', 'cryptography', 'partyhelp_pipeline') if u.find_spec(m)])",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=venv,
    )
    assert probe.stdout.split() == ["['pymysql',", "'cryptography',", "'partyhelp_pipeline']"]

    usage = run_command(venv, env, "--help")
    assert usage.returncode == 0, usage.stderr[-3000:]
    assert usage.stdout.startswith("usage: ") and "--tables" in usage.stdout

    token = secrets.token_hex(4)
    bucket, dataset = f"ph-pkg-{token}", f"ph_pkg_{token}"
    create_bucket(bucket)
    sync = sync_environment(source_db["database"], source_db["user"], bucket, dataset)
    # A named driver or runner that is not installed: one line naming the extra to install.
    named = run_command(
        venv,
        env,
        "--tables",
        "ph_venues",
        **sync,
        PARTYHELP_MYSQL_DRIVER="mysqlclient",
        PARTYHELP_TASK_RETRIES="0",
    )
    assert named.returncode == 1 and FAST_MISSING in named.stderr.strip().splitlines()[-1], (
        named.stderr[-3000:]
    )
    dask = run_command(venv, env, "--tables", "ph_venues", **sync, PARTYHELP_TASK_RUNNER="dask")
    assert dask.returncode == 2, dask.stderr[-3000:]
    assert dask.stderr.strip().splitlines()[-1].endswith(DASK_MISSING), dask.stderr[-3000:]

    # The default, auto: PyMySQL, since mysqlclient is not there; the log says so.
    result = run_command(venv, env, "--tables", "ph_venues", **sync)
    assert result.returncode == 0, result.stderr[-5000:]
    log = result.stdout + result.stderr
    assert (
        f"MySQL driver: PyMySQL (pure Python); mysqlclient, the faster C driver, is not "
        f"installed ({FAST_MISSING})" in log
    ), log[-5000:]
    settings = load_settings({**env, **sync})  # the emulators too, as the command had
    [row] = (
        bigquery_client(settings)
        .query(f"SELECT COUNT(*) AS n FROM {settings.quoted_table_ref('ph_venues')}")
        .result()
    )
    with admin_connection(source_db["database"]) as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM `{TABLES['ph_venues'].source_table}`")
        (source_rows,) = cursor.fetchone()
    assert row["n"] == source_rows > 0
