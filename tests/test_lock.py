"""Every dependency, transitive ones included, is locked with hashes (issue 12):
requirements.lock (what the Docker image installs) from requirements.txt, and
requirements-dev.lock (what CI and the demo install) from requirements-dev.txt. These checks
read the files alone: offline and fast."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest

from tests.conftest import ROOT

LOCKS = {"requirements.lock": "requirements.txt", "requirements-dev.lock": "requirements-dev.txt"}
REGENERATE = "regenerate the locks with the command in their header (requirements.lock first)"
_ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)(?:\s*\\)?$")
_HASH = re.compile(r"^\s+--hash=sha256:[0-9a-f]{64}(?:\s*\\)?$")
_VIA = re.compile(r"^\s+#\s+(?:via\s+)?(\S.*)$")


def canonical(name: str) -> str:
    """A package name as pip compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_pins(name: str) -> dict[str, str]:
    """The ``name==version`` pins of a requirements file, the files it includes (``-r``)
    too."""
    pins: dict[str, str] = {}
    for raw in (ROOT / name).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("-r "):
            pins |= requirement_pins(line[3:].strip())
        elif line:
            package, sep, version = line.partition("==")
            assert sep, f"{name} must pin every package with ==: {line!r}"
            pins[canonical(package)] = version.strip()
    return pins


@dataclass
class Locked:
    """One package of a lock: its version, hashes and what needs it (pip-compile's
    ``# via`` lines: a requirements file as ``-r FILE``, or another locked package)."""

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


@pytest.mark.parametrize(("lock", "requirements"), LOCKS.items())
def test_every_pin_of_the_requirements_is_locked_at_its_version(lock: str,
                                                                requirements: str) -> None:
    locked = read_lock(lock)
    differ = {name: (version, locked[name].version if name in locked else None)
              for name, version in requirement_pins(requirements).items()
              if name not in locked or locked[name].version != version}
    assert not differ, f"{requirements} pins vs {lock}: {differ}: {REGENERATE}"


@pytest.mark.parametrize("lock", LOCKS)
def test_every_locked_package_has_its_hashes(lock: str) -> None:
    locked = read_lock(lock)
    assert len(locked) > 100  # the transitive dependencies too, not only the direct pins
    unhashed = [name for name, entry in locked.items() if not entry.hashes]
    assert not unhashed, f"{lock}: no --hash for {unhashed}: {REGENERATE}"


@pytest.mark.parametrize(("lock", "requirements"), LOCKS.items())
def test_the_lock_holds_nothing_the_requirements_do_not_need(lock: str,
                                                             requirements: str) -> None:
    """Each locked package is a pin of the requirements, or what a needed package needs
    (by the lock's own ``# via`` lines); a pin dropped from the requirements is caught."""
    locked, direct = read_lock(lock), set(requirement_pins(requirements))
    stale = [name for name, entry in locked.items()
             if any(v.startswith("-r ") for v in entry.via) and name not in direct]
    assert not stale, f"{lock} still locks as a requirement what no longer is: {stale}"
    needed, frontier = set(direct), set(direct)
    while frontier:
        frontier = {name for name, entry in locked.items() if name not in needed
                    and any(canonical(v) in frontier for v in entry.via)}
        needed |= frontier
    assert set(locked) == needed, f"{lock}: not needed: {sorted(set(locked) - needed)}"


def test_the_runtime_and_the_dev_lock_agree_on_every_shared_package() -> None:
    """CI tests exactly the versions the image runs: the dev lock holds the runtime lock
    (it is compiled with ``-c requirements.lock``)."""
    runtime, dev = read_lock("requirements.lock"), read_lock("requirements-dev.lock")
    assert not set(runtime) - set(dev), f"not in requirements-dev.lock: {set(runtime) - set(dev)}"
    differ = {name: (entry.version, dev[name].version) for name, entry in runtime.items()
              if dev[name].version != entry.version}
    assert not differ, f"requirements.lock vs requirements-dev.lock: {differ}: {REGENERATE}"


@pytest.mark.parametrize(("lock", "requirements"), LOCKS.items())
def test_each_lock_says_how_to_regenerate_it(lock: str, requirements: str) -> None:
    header = "\n".join(line for line in (ROOT / lock).read_text().splitlines()[:8]
                       if line.startswith("#"))
    assert "pip-compile --generate-hashes" in header
    assert f"--output-file={lock} {requirements}" in header
    assert "/tmp/pip-tools" in header  # a throwaway venv: the tool is in no lock
    assert ("-c requirements.lock" in header) == (lock == "requirements-dev.lock")


def test_the_image_installs_the_runtime_lock_with_its_hashes() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes --wheel-dir /wheels -r /tmp/requirements.lock" in dockerfile
    assert "COPY requirements.lock /tmp/requirements.lock" in dockerfile


def test_ci_and_the_demo_install_the_dev_lock_with_its_hashes() -> None:
    """Both set .venv up through ``scripts/stack.sh install``."""
    stack = (ROOT / "scripts" / "stack.sh").read_text()
    assert "--require-hashes -r requirements-dev.lock" in stack
