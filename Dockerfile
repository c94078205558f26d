# syntax=docker/dockerfile:1
# The image of the partyhelp-bigquery-sync/daily deployment (prefect.yaml):
#   docker build -t partyhelp-bigquery-sync:0.1.0 .
# Prefect's official image of the version requirements.txt pins; exactly requirements.txt on
# top; the flow code only (flows/, tasks/, sql/); a non-root user; no secrets (they come from
# Prefect Secret blocks and the worker's Google credentials at run time).

# Builder: compiles mysqlclient against the MariaDB headers; every wheel goes to /wheels.
FROM prefecthq/prefect:3.9.1-python3.11 AS builder
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential pkg-config libmariadb-dev \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.txt /tmp/requirements.txt
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r /tmp/requirements.txt

# Runtime: the MariaDB client library only, and the wheels installed from a bind mount, so
# neither the compiler nor the wheel files end up in a layer.
FROM prefecthq/prefect:3.9.1-python3.11
LABEL org.opencontainers.image.title="partyhelp-bigquery-sync" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.description="Partyhelp MySQL to BigQuery sync (Prefect flow)"
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmariadb3 \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.txt /tmp/requirements.txt
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin partyhelp
WORKDIR /opt/prefect/partyhelp
# Owned by root: the flow's user can read the code, not change it.
COPY flows/ flows/
COPY tasks/ tasks/
COPY sql/ sql/
ENV PYTHONPATH=/opt/prefect/partyhelp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
