#!/usr/bin/env bash
# The README's first command: install what is needed, start the local stack, load a demo
# Partyhelp database, run one full sync into the local emulators, and show what landed.
#   scripts/demo.sh                 # demo data, local emulators (the default)
#   PARTYHELP_DEMO_SCALE=10 scripts/demo.sh
# To sync real GCP instead, set PARTYHELP_TARGET=gcp and the PARTYHELP_* settings of your
# project (README, "Point it at real GCP"): the emulators are then neither started nor used.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/stack.sh install
scripts/stack.sh start
if [[ ${PARTYHELP_TARGET:-local} == local ]]; then
    eval "$(scripts/stack.sh env)"
    export PARTYHELP_MYSQL_HOST=${PARTYHELP_MYSQL_HOST:-127.0.0.1}
    export PARTYHELP_MYSQL_PORT=${PARTYHELP_MYSQL_PORT:-3306}
    export PARTYHELP_MYSQL_DATABASE=${PARTYHELP_MYSQL_DATABASE:-partyhelp_demo}
    export PARTYHELP_MYSQL_USER=${PARTYHELP_MYSQL_USER:-partyhelp_reader}
    export PARTYHELP_MYSQL_PASSWORD=${PARTYHELP_MYSQL_PASSWORD:-demo-reader-password}
    export PARTYHELP_GCS_BUCKET=${PARTYHELP_GCS_BUCKET:-partyhelp-demo}
    export PARTYHELP_GCS_PREFIX=${PARTYHELP_GCS_PREFIX:-partyhelp}
    export PARTYHELP_BQ_PROJECT=${PARTYHELP_BQ_PROJECT:-partyhelp-local}
    export PARTYHELP_BQ_DATASET=${PARTYHELP_BQ_DATASET:-partyhelp}
    export PARTYHELP_BQ_LOCATION=${PARTYHELP_BQ_LOCATION:-australia-southeast1}
    # A fresh demo database each time, read by a SELECT-only user as in production.
    .venv/bin/python -m scripts.demo_setup --scale "${PARTYHELP_DEMO_SCALE:-1}"
fi

.venv/bin/python -m flows.partyhelp_sync "$@"
.venv/bin/python -m scripts.show_results
