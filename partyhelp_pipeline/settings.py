"""Configuration from environment variables, validated once at start.

The same variables work in a shell, a container and a Prefect deployment's job
variables. A missing required setting fails at once, naming the variable; secrets
are held as ``SecretStr`` so they never print in a repr, a log line or an exception.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import SecretStr


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the variable."""


Driver = Literal["mysqlclient", "pymysql"]

BIGQUERY_MAX_LOAD_URIS = 10_000  # source URIs one BigQuery load job accepts

# Identifier rules, checked before any identifier is used in a path or a query.
_BQ_PROJECT = re.compile(r"^(?:[a-z][a-z0-9.-]{0,61}:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_BQ_DATASET = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
_BQ_TABLE = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
_GCS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_GCS_PREFIX_SEGMENT = re.compile(r"^[A-Za-z0-9_.=-]+$")
_BLOCK_NAME = re.compile(r"^[a-z0-9-]+$")


def validate_project(value: str, variable: str = "PARTYHELP_BQ_PROJECT") -> str:
    """A Google Cloud project id, e.g. ``my-project-123``."""
    if not _BQ_PROJECT.match(value):
        raise ConfigError(f"{variable}={value!r} is not a valid Google Cloud project id")
    return value


def validate_dataset(value: str, variable: str = "PARTYHELP_BQ_DATASET") -> str:
    """A BigQuery dataset id: letters, digits and underscores."""
    if not _BQ_DATASET.match(value):
        raise ConfigError(
            f"{variable}={value!r} is not a valid BigQuery dataset id "
            "(letters, digits and underscores only)"
        )
    return value


def validate_table(value: str) -> str:
    """A BigQuery table id: letters, digits and underscores."""
    if not _BQ_TABLE.match(value):
        raise ConfigError(f"{value!r} is not a valid BigQuery table id")
    return value


def validate_bucket(value: str, variable: str = "PARTYHELP_GCS_BUCKET") -> str:
    """A GCS bucket name (3-222 characters, lower case, no ``goog`` prefix, no ``google``
    or ``g00gle`` inside, not an IP address, no ``..``)."""
    if (
        not _GCS_BUCKET.match(value)
        or ".." in value
        or value.startswith("goog")
        or "google" in value
        or "g00gle" in value
        or re.fullmatch(r"\d{1,3}(?:\.\d{1,3}){3}", value)
        or any(len(part) > 63 for part in value.split("."))
    ):
        raise ConfigError(f"{variable}={value!r} is not a valid GCS bucket name")
    return value


def validate_prefix(value: str, variable: str = "PARTYHELP_GCS_PREFIX") -> str:
    """An object prefix: ``/``-separated segments of safe characters, no ``.``/``..``."""
    stripped = value.strip("/")
    if not stripped:
        return ""
    segments = stripped.split("/")
    if any(s in (".", "..") or not _GCS_PREFIX_SEGMENT.match(s) for s in segments):
        raise ConfigError(
            f"{variable}={value!r} is not a valid object prefix "
            "(letters, digits and _ . = - in /-separated segments)"
        )
    return stripped


def quote_table_ref(project: str, dataset: str, table: str) -> str:
    """A fully qualified, back-quoted BigQuery table reference from validated parts."""
    return f"`{validate_project(project)}.{validate_dataset(dataset)}.{validate_table(table)}`"


@dataclass(frozen=True)
class MySQLSettings:
    """How to reach the source database (read-only)."""

    host: str
    port: int
    user: str
    password: SecretStr = field(repr=False)
    database: str
    driver: Driver = "mysqlclient"
    connect_timeout: int = 10


@dataclass(frozen=True)
class Settings:
    """Everything the sync reads from its environment."""

    mysql: MySQLSettings
    gcs_bucket: str
    gcs_prefix: str
    bq_project: str
    bq_dataset: str
    bq_location: str
    timezone: str = "Australia/Melbourne"
    part_max_bytes: int = 128 * 1024 * 1024
    load_max_uris: int = BIGQUERY_MAX_LOAD_URIS
    chunk_rows: int = 5_000_000
    batch_rows: int = 20_000
    progress_seconds: float = 15.0
    include_pii_hashes: bool = False
    pii_salt: SecretStr | None = field(default=None, repr=False)
    gcp_credentials_block: str | None = None
    storage_emulator_host: str | None = None
    bigquery_emulator_host: str | None = None

    @property
    def uses_emulators(self) -> bool:
        """True when both Google clients point at local emulators."""
        return bool(self.storage_emulator_host or self.bigquery_emulator_host)

    def table_ref(self, table: str) -> str:
        """``project.dataset.table`` (unquoted) for client calls."""
        return f"{self.bq_project}.{self.bq_dataset}.{validate_table(table)}"

    def quoted_table_ref(self, table: str) -> str:
        """Back-quoted ``project.dataset.table`` for SQL text."""
        return quote_table_ref(self.bq_project, self.bq_dataset, table)


def _get(env: Mapping[str, str], name: str, default: str | None = None) -> str:
    value = env.get(name, "").strip()
    if value:
        return value
    if default is None:
        raise ConfigError(f"{name} is not set; it is required (see README, Configuration)")
    return default


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1,
         maximum: int | None = None) -> int:
    raw = _get(env, name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name}={value} must be at most {maximum}")
    return value


def env_int(name: str, default: int, minimum: int = 1,
            env: Mapping[str, str] | None = None) -> int:
    """An integer setting read outside ``load_settings`` (task options, the task runner)."""
    return _int(os.environ if env is None else env, name, default, minimum)


def env_seconds(name: str, default: float | None, *, allow_zero: bool = False,
                env: Mapping[str, str] | None = None) -> float | None:
    """A number of seconds above 0 (or 0 too, with ``allow_zero``); ``default`` when unset."""
    raw = (os.environ if env is None else env).get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if math.isnan(value) or math.isinf(value) or value < 0 or (value == 0 and not allow_zero):
        bound = "of 0 or more" if allow_zero else "above 0"
        raise ConfigError(f"{name} must be a number of seconds {bound}, got {raw!r}")
    return value


def env_choice(name: str, default: str, choices: tuple[str, ...],
               env: Mapping[str, str] | None = None) -> str:
    """One of ``choices``."""
    value = _get(os.environ if env is None else env, name, default)
    if value not in choices:
        raise ConfigError(f"{name}={value!r} must be one of {', '.join(choices)}")
    return value


def validate_timezone(value: str, variable: str = "PARTYHELP_TIMEZONE") -> str:
    """An IANA time zone name, e.g. ``Australia/Melbourne``."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{variable}={value!r} is not an IANA time zone name "
                          "(e.g. Australia/Melbourne)") from None
    return value


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = _get(env, name, "false").lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (true/false)")


def load_settings(
    env: Mapping[str, str] | None = None, *, mysql_password: str | None = None
) -> Settings:
    """Read and validate the settings; ``mysql_password`` overrides the environment.

    The password may come from a Prefect ``Secret`` block instead of the environment:
    the flow resolves ``PARTYHELP_MYSQL_PASSWORD_BLOCK`` and passes it in here.
    """
    env = os.environ if env is None else env
    driver = _get(env, "PARTYHELP_MYSQL_DRIVER", "mysqlclient")
    if driver not in ("mysqlclient", "pymysql"):
        raise ConfigError(f"PARTYHELP_MYSQL_DRIVER={driver!r} must be mysqlclient or pymysql")
    password = mysql_password if mysql_password is not None else env.get(
        "PARTYHELP_MYSQL_PASSWORD", ""
    )
    mysql = MySQLSettings(
        host=_get(env, "PARTYHELP_MYSQL_HOST"),
        port=_int(env, "PARTYHELP_MYSQL_PORT", 3306),
        user=_get(env, "PARTYHELP_MYSQL_USER"),
        password=SecretStr(password),
        database=_get(env, "PARTYHELP_MYSQL_DATABASE"),
        driver=driver,  # type: ignore[arg-type]
    )
    storage_emulator = env.get("STORAGE_EMULATOR_HOST") or None
    bigquery_emulator = env.get("BIGQUERY_EMULATOR_HOST") or None
    project_default = "partyhelp-local" if (storage_emulator or bigquery_emulator) else None
    include_pii = _bool(env, "PARTYHELP_INCLUDE_PII_HASHES")
    salt = env.get("PARTYHELP_PII_SALT") or None
    if include_pii and not salt:
        raise ConfigError(
            "PARTYHELP_INCLUDE_PII_HASHES is on but PARTYHELP_PII_SALT is not set "
            "(or PARTYHELP_PII_SALT_BLOCK names no Secret)"
        )
    credentials_block = env.get("PARTYHELP_GCP_CREDENTIALS_BLOCK") or None
    if credentials_block and not _BLOCK_NAME.match(credentials_block):
        raise ConfigError(
            f"PARTYHELP_GCP_CREDENTIALS_BLOCK={credentials_block!r} is not a block name"
        )
    return Settings(
        mysql=mysql,
        gcs_bucket=validate_bucket(_get(env, "PARTYHELP_GCS_BUCKET")),
        gcs_prefix=validate_prefix(_get(env, "PARTYHELP_GCS_PREFIX", "partyhelp")),
        bq_project=validate_project(_get(env, "PARTYHELP_BQ_PROJECT", project_default)),
        bq_dataset=validate_dataset(_get(env, "PARTYHELP_BQ_DATASET", "partyhelp")),
        bq_location=_get(env, "PARTYHELP_BQ_LOCATION", "australia-southeast1"),
        timezone=validate_timezone(_get(env, "PARTYHELP_TIMEZONE", "Australia/Melbourne")),
        part_max_bytes=_int(env, "PARTYHELP_PART_MAX_BYTES", 128 * 1024 * 1024, 1024),
        load_max_uris=_int(env, "PARTYHELP_LOAD_MAX_URIS", BIGQUERY_MAX_LOAD_URIS,
                           maximum=BIGQUERY_MAX_LOAD_URIS),
        chunk_rows=_int(env, "PARTYHELP_CHUNK_ROWS", 5_000_000),
        batch_rows=_int(env, "PARTYHELP_BATCH_ROWS", 20_000),
        progress_seconds=float(_int(env, "PARTYHELP_PROGRESS_SECONDS", 15, 0)),
        include_pii_hashes=include_pii,
        pii_salt=SecretStr(salt) if salt else None,
        gcp_credentials_block=credentials_block,
        storage_emulator_host=storage_emulator,
        bigquery_emulator_host=bigquery_emulator,
    )
