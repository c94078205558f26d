#!/usr/bin/env bash
# Installs (with Debian's chromium, the UI tests' browser, which the demo does without) and
# starts the local stack, then lints (ruff check, and ruff format --check), type-checks (mypy,
# strict on the package: pyproject.toml [tool.mypy]) and tests (pytest, arguments passed on).
# --quick (first argument): the same, but only the tests that need no service but MariaDB and
# the one end-to-end sync (tests/flows/test_partyhelp_sync.py), a few minutes; the full suite stays CI's gate.
# Services keep running afterwards, unless PARTYHELP_STOP_STACK=1 (CI): then the services this
# run started are stopped (ones that already answered are left alone).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The quick selection is by marker, not by a list of modules that would go stale: conftest.py
# marks `services` every test whose fixtures include `stack` (so a new unit test is in, a new
# stack test out, without anyone listing it), and `smoke` is the one sync kept.
selection=()
if [[ ${1:-} == --quick ]]; then
    shift
    selection=(-m "not services or smoke")
fi

started=()
stop_started() {
    local svc
    for svc in ${started[@]+"${started[@]}"}; do scripts/stack.sh "stop-$svc" || true; done
}
if [[ ${PARTYHELP_STOP_STACK:-0} == 1 ]]; then
    for svc in gcs bigquery prefect; do
        scripts/stack.sh status "$svc" >/dev/null || started+=("$svc")
    done
    trap stop_started EXIT
fi

scripts/stack.sh install --with-browser # chromium too: the UI tests drive it
scripts/stack.sh start
eval "$(scripts/stack.sh env)"

ruff_rc=0
mypy_rc=0
pytest_rc=0
.venv/bin/ruff check . || ruff_rc=$?
.venv/bin/ruff format --check . || ruff_rc=$?
.venv/bin/python -m mypy || mypy_rc=$?
# Test modules run in parallel, each whole on one worker (--dist loadfile: its module
# fixtures run once). Each worker has its own emulators (tests/conftest.py,
# session_emulators), databases, buckets and datasets; the deployments, whose names are
# fixed, are serialised by a file lock (tests/scenarios/test_deployment.py). PARTYHELP_TEST_WORKERS=0
# runs the modules one after another.
# Two workers on two cores. A third finished one run sooner (1,165 s against about 1,330 s
# on a slow machine), but made every test about a third slower, and on a busier machine a
# test's 2-second retry window then ran out: the timing bounds need the headroom.
workers=${PARTYHELP_TEST_WORKERS:-2}
xdist=()
if ((workers > 0)); then xdist=(-n "$workers" --dist loadfile); fi
.venv/bin/python -m pytest ${xdist[@]+"${xdist[@]}"} ${selection[@]+"${selection[@]}"} "$@" ||
    pytest_rc=$?

echo "== summary: ruff exit $ruff_rc, mypy exit $mypy_rc, pytest exit $pytest_rc"
if ((pytest_rc)); then exit "$pytest_rc"; fi
if ((ruff_rc || mypy_rc)); then exit 1; fi
