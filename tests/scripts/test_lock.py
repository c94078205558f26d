"""Every dependency, transitive ones included, is locked with hashes (issues 12 and 18).
pyproject.toml declares version ranges; scripts/lock.sh compiles three hash-checked locks
from them: requirements.lock (the runtime with the [fast] and [dask] extras: what the Docker
image installs), requirements.txt (the base runtime: `pip install -r requirements.txt`, no
compiler or MySQL headers needed) and requirements-dev.lock (requirements-dev.txt and every
extra: what CI and the demo install). These checks read the files alone: offline and fast.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field

import pytest
from packaging.requirements import Requirement

from tests.conftest import ROOT

PROJECT = "partyhelp-bigquery-sync"
# Each lock, and the extras of pyproject.toml it holds (the dev lock also requirements-dev.txt).
LOCKS = {
    "requirements.lock": ("fast", "dask"),
    "requirements.txt": (),
    "requirements-dev.lock": ("fast", "dask"),
}
DEV_PINS = "requirements-dev.txt"
REGENERATE = "regenerate the locks: scripts/lock.sh (README, Installing the package)"
# The packages that need a compiler and MySQL's headers (no Linux wheel): [fast] only.
NEEDS_HEADERS = {"mysqlclient"}
_ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)(?:\s*;[^\\]*)?(?:\s*\\)?$")
_HASH = re.compile(r"^\s+--hash=sha256:[0-9a-f]{64}(?:\s*\\)?$")
_VIA = re.compile(r"^\s+#\s+(?:via\s+)?(\S.*)$")
# How pip-compile names a requirement of its input files in the `# via` lines.
_DIRECT_VIA = (f"{PROJECT} (pyproject.toml)", f"-r {DEV_PINS}")


def canonical(name: str) -> str:
    """A package name as pip compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(extras: tuple[str, ...]) -> list[Requirement]:
    """pyproject.toml's runtime requirements with ``extras``' (markers for Python 3.11, the
    image's, on which the locks are compiled)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] + [
        r for e in extras for r in project["optional-dependencies"][e]
    ]
    requirements = [Requirement(line) for line in lines]
    env = {"python_version": "3.11", "python_full_version": "3.11.2"}
    return [r for r in requirements if r.marker is None or r.marker.evaluate(env)]


def dev_pins() -> dict[str, str]:
    """requirements-dev.txt's ``name==version`` pins."""
    pins: dict[str, str] = {}
    for raw in (ROOT / DEV_PINS).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            package, sep, version = line.partition("==")
            assert sep, f"{DEV_PINS} must pin every package with ==: {line!r}"
            pins[canonical(package)] = version.strip()
    return pins


@dataclass
class Locked:
    """One package of a lock: its version, hashes and what needs it (pip-compile's
    ``# via`` lines: an input file, ``-c requirements.lock``, or another locked package)."""

    version: str
    hashes: int = 0
    via: list[str] = field(default_factory=list)


def read_lock(name: str) -> dict[str, Locked]:
    """The packages of a pip-compile lock, by canonical name."""
    locked: dict[str, Locked] = {}
    current: Locked | None = None
    for line in (ROOT / name).read_text().splitlines():
        if entry := _ENTRY.match(line):
            current = locked.setdefault(canonical(entry[1]), Locked(entry[2]))
        elif current and _HASH.match(line):
            current.hashes += 1
        elif current and (via := _VIA.match(line)) and via[1] != "via":
            current.via.append(via[1].strip())
        elif line and not line.startswith((" ", "#")):
            pytest.fail(f"{name}: an entry that is no pinned name==version: {line!r}")
    return locked


def direct(lock: str) -> set[str]:
    """What the lock's inputs ask for by name."""
    names = {canonical(r.name) for r in declared(LOCKS[lock])}
    return names | set(dev_pins()) if lock == "requirements-dev.lock" else names


@pytest.mark.parametrize("lock", LOCKS)
def test_every_declared_requirement_is_locked_within_its_range(lock: str) -> None:
    locked = read_lock(lock)
    outside = {
        str(r): locked[canonical(r.name)].version if canonical(r.name) in locked else None
        for r in declared(LOCKS[lock])
        if canonical(r.name) not in locked
        or not r.specifier.contains(locked[canonical(r.name)].version, prereleases=True)
    }
    assert not outside, f"pyproject.toml's ranges vs {lock}: {outside}: {REGENERATE}"
    if lock == "requirements-dev.lock":
        differ = {
            name: (version, locked[name].version if name in locked else None)
            for name, version in dev_pins().items()
            if name not in locked or locked[name].version != version
        }
        assert not differ, f"{DEV_PINS} pins vs {lock}: {differ}: {REGENERATE}"


@pytest.mark.parametrize("lock", LOCKS)
def test_every_locked_package_has_its_hashes(lock: str) -> None:
    locked = read_lock(lock)
    assert len(locked) > 100  # the transitive dependencies too, not only the direct ones
    unhashed = [name for name, entry in locked.items() if not entry.hashes]
    assert not unhashed, f"{lock}: no --hash for {unhashed}: {REGENERATE}"


@pytest.mark.parametrize("lock", LOCKS)
def test_the_lock_holds_nothing_its_inputs_do_not_need(lock: str) -> None:
    """Each locked package is asked for by the lock's inputs, or is what a needed package
    needs (by the lock's own ``# via`` lines); a requirement dropped is caught."""
    locked, wanted = read_lock(lock), direct(lock)
    stale = [
        name
        for name, entry in locked.items()
        if any(v in _DIRECT_VIA for v in entry.via) and name not in wanted
    ]
    assert not stale, f"{lock} still locks as a requirement what no longer is: {stale}"
    needed, frontier = set(wanted), set(wanted)
    while frontier:
        frontier = {
            name
            for name, entry in locked.items()
            if name not in needed and any(canonical(v) in frontier for v in entry.via)
        }
        needed |= frontier
    assert set(locked) == needed, f"{lock}: not needed: {sorted(set(locked) - needed)}"


def test_the_locks_agree_on_every_shared_package() -> None:
    """The base lock is the image's lock without the extras, and CI tests exactly the
    versions the image runs (both are compiled with ``-c requirements.lock``)."""
    runtime = read_lock("requirements.lock")
    for other in ("requirements.txt", "requirements-dev.lock"):
        locked = read_lock(other)
        shared = set(runtime) & set(locked)
        differ = {
            n: (runtime[n].version, locked[n].version)
            for n in shared
            if runtime[n].version != locked[n].version
        }
        assert not differ, f"requirements.lock vs {other}: {differ}: {REGENERATE}"
    base, dev = set(read_lock("requirements.txt")), set(read_lock("requirements-dev.lock"))
    assert base < set(runtime) <= dev, f"{REGENERATE}"
    assert {"mysqlclient", "isal", "prefect-dask", "dask"} <= set(runtime) - base


def test_the_base_lock_installs_without_a_compiler() -> None:
    """`pip install -r requirements.txt` (and `pip install .`) need no MySQL headers: the
    C driver is only in [fast], and the base holds PyMySQL with what caching_sha2_password
    needs (cryptography)."""
    base = read_lock("requirements.txt")
    assert not NEEDS_HEADERS & set(base), f"requirements.txt locks {NEEDS_HEADERS & set(base)}"
    assert {"pymysql", "cryptography"} <= set(base)
    assert "pymysql" in direct("requirements.txt")
    assert not NEEDS_HEADERS & {canonical(r.name) for r in declared(())}
    assert {canonical(r.name) for r in declared(("fast",))} >= NEEDS_HEADERS


@pytest.mark.parametrize("lock", LOCKS)
def test_each_lock_says_how_to_regenerate_it(lock: str) -> None:
    header = [
        line.strip("# ").strip()
        for line in (ROOT / lock).read_text().splitlines()[:8]
        if line.startswith("#")
    ]
    assert "scripts/lock.sh" in header, f"{lock}'s header must name scripts/lock.sh"
    script = (ROOT / "scripts" / "lock.sh").read_text()
    assert f"--output-file={lock}" in script
    assert "--generate-hashes" in script
    assert 'CUSTOM_COMPILE_COMMAND="scripts/lock.sh"' in script


def test_the_image_installs_the_runtime_lock_with_its_hashes() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes --wheel-dir /wheels -r /tmp/requirements.lock" in dockerfile
    assert "COPY requirements.lock /tmp/requirements.lock" in dockerfile


def test_ci_and_the_demo_install_the_dev_lock_with_its_hashes() -> None:
    """Both set .venv up through ``scripts/stack.sh install``."""
    stack = (ROOT / "scripts" / "stack.sh").read_text()
    assert "--require-hashes -r requirements-dev.lock" in stack
