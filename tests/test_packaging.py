"""The project is an installable package: ``pip install .`` builds a wheel of
``partyhelp_pipeline`` (with ``partyhelp_pipeline.spec``), ``tasks`` and ``flows`` and the
``partyhelp-sync`` command, and nothing else of the checkout (no tests, scripts, sql).

The wheel is built offline from a copy of what a clean clone holds (setuptools comes from
requirements-dev.txt, so no build isolation and no index is needed).
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("partyhelp_pipeline", "tasks", "flows")
DISTRIBUTION = "partyhelp-bigquery-sync"
COMMAND = "partyhelp-sync"
COMMAND_TARGET = "flows.partyhelp_sync:main"


def repository_files() -> list[str]:
    """The files a clean clone holds (tracked or new, not ignored), relative to the repo."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
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
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--wheel-dir", str(dist), str(source)],
        capture_output=True, text=True, timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")})
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    [wheel] = dist.glob("*.whl")
    return wheel


def requirement_lines() -> list[str]:
    lines = (line.split("#", 1)[0].strip()
             for line in (ROOT / "requirements.txt").read_text().splitlines())
    return [line for line in lines if line]


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
    expected = {p for p in repository_files()
                if p.endswith(".py") and p.split("/")[0] in PACKAGES}
    assert modules == expected, (
        f"missing from the wheel (a package not listed in pyproject.toml?): "
        f"{sorted(expected - modules)}; not ours: {sorted(modules - expected)}")
    assert {"partyhelp_pipeline/spec/__init__.py", "flows/partyhelp_sync.py",
            "tasks/__init__.py"} <= modules
    assert "partyhelp_pipeline/py.typed" in names
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top_level == set(PACKAGES), "only the three packages go into site-packages"
    assert not any(re.match(r"(tests|scripts|benchmarks|sql|docs)/", n) for n in names)

    # The command, and the card's dependencies: exactly requirements.txt's pins.
    scripts = configparser.ConfigParser()
    scripts.read_string(entry_points)
    assert dict(scripts["console_scripts"]) == {COMMAND: COMMAND_TARGET}
    requires = [line.removeprefix("Requires-Dist: ").strip()
                for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert sorted(r.lower() for r in requires) == sorted(r.lower() for r in requirement_lines())


def test_console_script_prints_its_usage(tmp_path: Path) -> None:
    """The command the project installs into .venv (scripts/stack.sh install) runs ``--help``
    from anywhere, without PYTHONPATH."""
    command = Path(sys.executable).with_name(COMMAND)
    assert command.is_file(), f"no {command}: run scripts/stack.sh install (pip install -e .)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    result = subprocess.run([str(command), "--help"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("usage: ")
    for option in ("--date", "--tables", "--from-exports", "backfill"):
        assert option in result.stdout
