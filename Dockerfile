# syntax=docker/dockerfile:1
# The image of the partyhelp-bigquery-sync/daily and daily-cloud-run deployments: their
# build and push steps in prefect.yaml build it, tagged with the git commit. By hand:
#   docker build -t partyhelp-bigquery-sync:$(git rev-parse --short=12 HEAD) .
# Prefect's official image of the version the locks pin; exactly requirements.lock on top
# (the runtime with its [fast] and [dask] extras: every dependency, transitive ones included,
# pinned with hashes; scripts/lock.sh makes it); the project installed from its wheel with
# those extras (partyhelp_pipeline, tasks, flows and the partyhelp-sync command in
# site-packages: no PYTHONPATH); `pip check` proves the set consistent; a non-root user; no
# secrets (they come from Prefect Secret blocks and the worker's Google credentials at run
# time).
#
# The base image by digest. A tag can be moved; a release pins what it was tested on. Both
# FROM lines below name the tag; for a release, read the digest of that tag once, where a
# registry is reachable (none is from this repository's CI):
#   docker buildx imagetools inspect prefecthq/prefect:3.9.1-python3.11   # "Digest: sha256:..."
#   (or: docker pull prefecthq/prefect:3.9.1-python3.11 &&
#        docker inspect --format '{{index .RepoDigests 0}}' prefecthq/prefect:3.9.1-python3.11)
# and write it into both FROM lines, tag kept for the reader:
#   FROM prefecthq/prefect:3.9.1-python3.11@sha256:<64 hex digits> AS builder
#   FROM prefecthq/prefect:3.9.1-python3.11@sha256:<64 hex digits>
# Docker then pulls exactly that image whatever the tag points to later (tests/scenarios/
# test_deployment.py accepts either form, and checks both lines name the same image).

# Builder: compiles mysqlclient (the [fast] extra: it has no Linux wheel) against the MariaDB
# headers; the lock's wheels go to /wheels, the project's own wheel to /dist (a later layer:
# a code change rebuilds only it). Every file downloaded is checked against the lock's
# hashes; the lock pins every package, so /wheels holds exactly the lock's packages.
FROM prefecthq/prefect:3.9.1-python3.11 AS builder
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential pkg-config libmariadb-dev \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.lock /tmp/requirements.lock
RUN pip wheel --no-cache-dir --require-hashes --wheel-dir /wheels -r /tmp/requirements.lock
# What `pip install .` needs: pyproject.toml (which reads README.md) and the three packages
# it declares. No tests/, scripts/ or sql/ (the SQL is generated from the specs in code).
COPY pyproject.toml README.md /src/
COPY partyhelp_pipeline/ /src/partyhelp_pipeline/
COPY tasks/ /src/tasks/
COPY flows/ /src/flows/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist /src

# Runtime: the MariaDB client library only, and the wheels installed from bind mounts, so
# neither the compiler nor the wheel files end up in a layer.
FROM prefecthq/prefect:3.9.1-python3.11
LABEL org.opencontainers.image.title="partyhelp-bigquery-sync" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.description="Partyhelp MySQL to BigQuery sync (Prefect flow)"
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmariadb3 \
    && rm -rf /var/lib/apt/lists/*
# The builder's wheels, checked there against the lock's hashes (mysqlclient's, built from its
# checked sdist, has no hash of its own to check here): exactly the lock, nothing resolved.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --no-deps /wheels/*.whl
# The project with its extras, like `pip install '.[fast,dask]'`: its dependencies
# (pyproject.toml's ranges, which the lock satisfies: tests/scripts/test_lock.py) are the ones just
# installed; --no-index: nothing else can come in. Then `pip check`: every installed
# package's requirements are met (a lock or a range gone wrong fails the build, not a run).
RUN --mount=type=bind,from=builder,source=/dist,target=/dist \
    pip install --no-cache-dir --no-index --find-links /dist \
        "partyhelp-bigquery-sync[fast,dask]" \
    && pip check

RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin partyhelp
WORKDIR /opt/prefect/partyhelp
# The deployment's entrypoint is the file flows/partyhelp_sync.py:partyhelp_bigquery_sync,
# relative to this directory (prefect.yaml's pull step sets it). Prefect 3.9.1 would also
# load a module path (`flows.partyhelp_sync.partyhelp_bigquery_sync`, no colon), but the
# entrypoint is shared with the daily-local deployment, which runs this checkout's file, so
# it stays a file. Decision: copy that one file only, without flows/__init__.py. Prefect runs
# it as a script with this directory first on sys.path; a flows/ here without __init__.py is
# no regular package, so the `flows`, `tasks` and `partyhelp_pipeline` the script imports
# all resolve to the installed packages (tests/scenarios/test_deployment.py checks this). Owned by
# root: the flow's user can read it, not change it.
COPY flows/partyhelp_sync.py flows/partyhelp_sync.py
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
