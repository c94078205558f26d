"""What a good value is: identifiers checked before any is used in a path or a query, the
names MySQL and Prefect take, and which MySQL driver a ``PARTYHELP_MYSQL_DRIVER`` choice means.
Also used outside the settings (a table id is checked before it goes into SQL)."""

from __future__ import annotations

import importlib
import re
from functools import cache
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import SecretStr
from pydantic.fields import FieldInfo


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the variable."""


# The MySQL drivers. PARTYHELP_MYSQL_DRIVER also takes `auto`: mysqlclient (C, from the
# [fast] extra) when it imports, else PyMySQL (pure Python, always installed).
Driver = Literal["mysqlclient", "pymysql"]
DriverChoice = Literal["auto", "mysqlclient", "pymysql"]
TaskRunnerName = Literal["threads", "dask"]
SecretBlockType = Literal["secret", "gcp-secret"]
# MySQL's own names for its client's --ssl-mode.
SslMode = Literal["disabled", "preferred", "required", "verify_ca", "verify_identity"]

BIGQUERY_MAX_LOAD_URIS = 10_000  # source URIs one BigQuery load job accepts
LOCAL_PROJECT = "partyhelp-local"  # the project when the Google clients use emulators
EMULATOR_VARIABLES = ("STORAGE_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST")

# Identifier rules, checked before any identifier is used in a path or a query.
_BQ_PROJECT = re.compile(r"^(?:[a-z][a-z0-9.-]{0,61}:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_BQ_DATASET = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
_BQ_TABLE = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
_GCS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_GCS_PREFIX_SEGMENT = re.compile(r"^[A-Za-z0-9_.=-]+$")
BLOCK_NAME = re.compile(r"^[a-z0-9-]+$")
_VARIABLE_NAME = re.compile(r"^[a-z0-9_-]{1,255}$")


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


def validate_timezone(value: str, variable: str = "PARTYHELP_TIMEZONE") -> str:
    """An IANA time zone name, e.g. ``Australia/Melbourne``."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"{variable}={value!r} is not an IANA time zone name (e.g. Australia/Melbourne)"
        ) from None
    return value


def validate_block_name(value: str, variable: str) -> str:
    """A Prefect block document name: lower-case letters, digits and dashes."""
    if not BLOCK_NAME.match(value):
        raise ConfigError(f"{variable}={value!r} is not a block name")
    return value


def validate_variable_name(value: str, variable: str = "PARTYHELP_SETTINGS_VARIABLE") -> str:
    """A Prefect Variable name: lower-case letters, digits, ``-`` and ``_`` (Prefect's rule)."""
    if not _VARIABLE_NAME.match(value):
        raise ConfigError(
            f"{variable}={value!r} is not a Prefect Variable name "
            "(lower-case letters, digits, - and _)"
        )
    return value


def quote_table_ref(project: str, dataset: str, table: str) -> str:
    """A fully qualified, back-quoted BigQuery table reference from validated parts."""
    return f"`{validate_project(project)}.{validate_dataset(dataset)}.{validate_table(table)}`"


@cache
def c_driver_imports() -> bool:
    """Whether mysqlclient (module ``MySQLdb``) imports here: installed, with its client
    library. Asked once per process."""
    try:
        importlib.import_module("MySQLdb")
    except ImportError:
        return False
    return True


def chosen_driver(choice: DriverChoice) -> Driver:
    """The driver a ``PARTYHELP_MYSQL_DRIVER`` value means here: ``auto`` is mysqlclient
    when it imports, else PyMySQL. A named driver stays named, installed or not: connecting
    reports a missing one (``partyhelp_pipeline.source``), so that settings validate the same on
    a machine that only deploys."""
    if choice != "auto":
        return choice
    return "mysqlclient" if c_driver_imports() else "pymysql"


def variable_of(declared: FieldInfo) -> str:
    """The environment variable a declared setting is read from (its validation alias)."""
    alias = declared.validation_alias
    assert isinstance(alias, str), "every setting names its variable"
    return alias


def is_secret(declared: FieldInfo) -> bool:
    """Whether a declared setting is a secret (held as ``SecretStr``)."""
    return SecretStr in (declared.annotation, *get_args(declared.annotation))
