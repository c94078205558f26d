#!/usr/bin/env bash
# The README's first command: install what is needed, start the local stack, load a demo
# Partyhelp database, run one full sync into the local emulators, and show what landed.
#   scripts/demo.sh                 # demo data, local emulators (the default)
#   PARTYHELP_DEMO_SCALE=10 scripts/demo.sh
# Every step says what it does and no step is silent for more than 10 s; the last line gives
# the seconds of each step (install, services, sync). The settings are those of
# `scripts/stack.sh env --demo`, which gives any shell the same: see the README.
# To sync real GCP instead, set PARTYHELP_TARGET=gcp and the PARTYHELP_* settings of your
# project (README, "Point it at real GCP"): the emulators are then neither started nor used,
# and the run reports to PREFECT_API_URL, else to the stack's Prefect server.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/stack.sh # log, with_ticker, PREFECT_URL: nothing runs
source scripts/stack.sh
LOG_TAG=demo

STEP_TIMES=() # "install 12 s", ... for the last line
# timed STEP COMMAND...: runs COMMAND and records its seconds as STEP's.
timed() {
    local step=$1 start=$SECONDS rc=0
    shift
    "$@" || rc=$?
    STEP_TIMES+=("$step $((SECONDS - start)) s")
    return "$rc"
}

# The last line: "took 161 s: install 12 s, services 3 s, demo database 4 s, sync 140 s".
say_times() {
    local rc=$? steps= step
    for step in "${STEP_TIMES[@]}"; do steps+=${steps:+, }$step; done
    if ((rc)); then
        log "FAILED (exit $rc) after $SECONDS s: $steps"
    else
        log "took $SECONDS s: $steps"
    fi
}
trap say_times EXIT

# No browser: only the tests use one (scripts/test.sh installs it).
log "install: what is missing or out of date (scripts/stack.sh install)"
timed install scripts/stack.sh install
if [[ ${PARTYHELP_TARGET:-local} == local ]]; then
    log "services: MariaDB, fake-gcs-server, BigQuery emulator, Prefect (scripts/stack.sh start)"
    timed services scripts/stack.sh start
    # The demo's settings, the emulators and the stack's Prefect server, in one place.
    eval "$(scripts/stack.sh env --demo)"
    # A fresh demo database each time, read by a SELECT-only user as in production.
    timed "demo database" with_ticker "building the demo database $PARTYHELP_MYSQL_DATABASE \
(scale ${PARTYHELP_DEMO_SCALE:-1})" \
        .venv/bin/python -m scripts.demo_setup --scale "${PARTYHELP_DEMO_SCALE:-1}"
elif [[ -z ${PREFECT_API_URL:-} ]]; then
    # No temporary Prefect server per run (slow to start on a small machine): the stack's.
    log "services: the stack's Prefect server (scripts/stack.sh start-prefect)"
    timed services scripts/stack.sh start-prefect
    export PREFECT_API_URL=$PREFECT_URL/api
fi

log "sync: python -m flows.partyhelp_sync${*:+ $*} (its run also shows in the Prefect UI," \
    "${PREFECT_API_URL%/api})"
timed sync with_ticker syncing .venv/bin/python -m flows.partyhelp_sync "$@"
.venv/bin/python -m scripts.show_results
if [[ ${PARTYHELP_TARGET:-local} == local ]]; then
    log 'a sync by hand on this stack: eval "$(scripts/stack.sh env --demo)", then any' \
        'command of the README, e.g. python -m flows.partyhelp_sync --tables ph_venues'
fi
