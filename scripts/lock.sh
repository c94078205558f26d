#!/usr/bin/env bash
# Regenerates the three hash-checked locks from pyproject.toml's version ranges (and, for the
# dev lock, requirements-dev.txt's pins), in this order:
#   requirements.lock      the runtime with its extras, [fast] (mysqlclient, isal) and [dask]:
#                          what the Docker image installs
#   requirements.txt       the base runtime, at requirements.lock's versions: what
#                          `pip install -r requirements.txt` installs (no compiler needed)
#   requirements-dev.lock  requirements-dev.txt + the runtime with every extra, at
#                          requirements.lock's versions: CI, the tests, the demo (.venv)
#
# Usage: scripts/lock.sh [PIP-COMPILE OPTIONS...]
#   scripts/lock.sh                           after a change to pyproject.toml's ranges or
#                                             requirements-dev.txt: the other pins stay
#   scripts/lock.sh --upgrade-package prefect one package (and what it needs) to its newest
#   scripts/lock.sh --upgrade                 everything to the newest the ranges allow
# Then `scripts/stack.sh install` brings .venv to the new dev lock.
#
# pip-tools runs from a throwaway venv (it is in no lock). Python 3.11, the image's: the
# locks hold what that Python needs (pip-compile evaluates markers for it).
# Environment: PARTYHELP_LOCK_PYTHON [python3.11], PARTYHELP_LOCK_VENV [/tmp/pip-tools]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python=${PARTYHELP_LOCK_PYTHON:-python3.11}
tools=${PARTYHELP_LOCK_VENV:-/tmp/pip-tools}
"$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' ||
    { echo "lock.sh: $python is not Python 3.11 (set PARTYHELP_LOCK_PYTHON)" >&2; exit 2; }
if ! "$tools/bin/pip-compile" --version 2>/dev/null | grep -q ' 7\.6\.2$'; then
    "$python" -m venv --clear "$tools"
    "$tools/bin/pip" install --quiet pip==26.3 pip-tools==7.6.2
fi

# What each lock's header shows as the command that made it.
export CUSTOM_COMPILE_COMMAND="scripts/lock.sh"
compile() {
    "$tools/bin/pip-compile" --quiet --generate-hashes --allow-unsafe --strip-extras \
        --no-emit-index-url --no-emit-find-links "$@"
}
compile --extra fast --extra dask --output-file=requirements.lock "$@" pyproject.toml
compile -c requirements.lock --output-file=requirements.txt "$@" pyproject.toml
compile -c requirements.lock --all-extras --output-file=requirements-dev.lock "$@" \
    requirements-dev.txt pyproject.toml
echo "lock.sh: requirements.lock, requirements.txt and requirements-dev.lock are up to date"
