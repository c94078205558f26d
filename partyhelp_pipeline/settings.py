"""Every setting of the sync, declared once: its variable, type, default and meaning.

The same variables work in a shell, a container and a Prefect deployment's job variables.
``Settings`` below is the one declaration; the README's Configuration table
(``python -m scripts.generate_docs``), ``prefect.yaml``'s list and the messages that name a
bad value all derive from it, and ``tests/test_settings_declared.py`` checks them against it.

``Settings`` is a plain pydantic ``BaseModel`` whose fields take their environment variable
as ``validation_alias``, not a pydantic-settings ``BaseSettings``: ``load_settings(env)``
must validate the mapping it is given (tests pass dicts, the flow adds secrets from Prefect
blocks), and ``BaseSettings`` always reads ``os.environ`` as well.

Rules: an empty variable counts as unset. Every bad or missing value is reported at once, in
one ``ConfigError`` that names each variable (in declaration order, joined by ``"; "``).
Secrets are held as ``SecretStr``, so they never print in a repr, a log line or an exception.
Options Prefect fixes at import time (task retries, the task runner) are read one by one with
``read_setting``, through the same declaration and the same messages.

Variables read only by the scripts around the sync are not settings of the sync and are
documented where they are read: the local stack's ``PARTYHELP_STACK_HOME``,
``PARTYHELP_STACK_DATA``, ``PARTYHELP_PYTHON``, ``PARTYHELP_*_PORT``,
``PARTYHELP_START_TIMEOUT``, ``PARTYHELP_STOP_STACK`` (``scripts/stack.sh``); the demo's
``PARTYHELP_TARGET``, ``PARTYHELP_DEMO_*``; the benchmarks' ``PARTYHELP_BENCH_*``; the
tests' ``PARTYHELP_TEST_*``.
"""

from __future__ import annotations

import datetime as dt
import importlib
import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    create_model,
    model_validator,
)
from pydantic.fields import FieldInfo


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the variable."""


# The MySQL drivers. PARTYHELP_MYSQL_DRIVER also takes `auto`: mysqlclient (C, from the
# [fast] extra) when it imports, else PyMySQL (pure Python, always installed).
Driver = Literal["mysqlclient", "pymysql"]
DriverChoice = Literal["auto", "mysqlclient", "pymysql"]
TaskRunnerName = Literal["threads", "dask"]
# MySQL's own names for its client's --ssl-mode.
SslMode = Literal["disabled", "preferred", "required", "verify_ca", "verify_identity"]

BIGQUERY_MAX_LOAD_URIS = 10_000  # source URIs one BigQuery load job accepts
LOCAL_PROJECT = "partyhelp-local"  # the project when the Google clients use emulators
EMULATOR_VARIABLES = ("STORAGE_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST")
_REQUIRED = "is not set; it is required (see README, Configuration)"

# Identifier rules, checked before any identifier is used in a path or a query.
_BQ_PROJECT = re.compile(r"^(?:[a-z][a-z0-9.-]{0,61}:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_BQ_DATASET = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
_BQ_TABLE = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
_GCS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_GCS_PREFIX_SEGMENT = re.compile(r"^[A-Za-z0-9_.=-]+$")
_BLOCK_NAME = re.compile(r"^[a-z0-9-]+$")
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
    if not _BLOCK_NAME.match(value):
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


# ------------------------------------------------ value rules, naming the variable they check


def _variable(info: ValidationInfo) -> str:
    """The environment variable of the field being validated."""
    declared = Settings.model_fields.get(info.field_name or "")
    alias = declared.validation_alias if declared else None
    return alias if isinstance(alias, str) else str(info.field_name)


def _whole(minimum: int = 1, maximum: int | None = None) -> BeforeValidator:
    """An integer in ``minimum..maximum``."""

    def parse(raw: Any, info: ValidationInfo) -> int | None:
        if raw is None:
            return None
        try:
            value = int(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{_variable(info)}={raw!r} is not an integer") from None
        if value < minimum:
            raise ConfigError(f"{_variable(info)}={value} must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise ConfigError(f"{_variable(info)}={value} must be at most {maximum}")
        return value

    return BeforeValidator(parse)


def _seconds(*, allow_zero: bool) -> BeforeValidator:
    """A finite number of seconds above 0 (or 0 too, with ``allow_zero``)."""

    def parse(raw: Any, info: ValidationInfo) -> float | None:
        if raw is None:
            return None
        try:
            value = float(raw)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            bound = "of 0 or more" if allow_zero else "above 0"
            raise ConfigError(f"{_variable(info)} must be a number of seconds {bound}, got {raw!r}")
        return value

    return BeforeValidator(parse)


def _day(raw: Any, info: ValidationInfo) -> dt.date | None:
    """A calendar day written ``YYYY-MM-DD``."""
    if raw is None or isinstance(raw, dt.date):
        return raw
    try:
        return dt.date.fromisoformat(str(raw))
    except ValueError:
        raise ConfigError(f"{_variable(info)}={raw!r} is not a day: expected YYYY-MM-DD") from None


def _boolean(raw: Any, info: ValidationInfo) -> bool:
    if isinstance(raw, bool):
        return raw
    if str(raw).lower() in ("1", "true", "yes", "on"):
        return True
    if str(raw).lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{_variable(info)}={raw!r} is not a boolean (true/false)")


def _one_of(choices: Any) -> BeforeValidator:
    """One of the values of the ``Literal`` type ``choices``."""
    allowed: tuple[str, ...] = get_args(choices)

    def parse(raw: Any, info: ValidationInfo) -> Any:
        if raw not in allowed:
            raise ConfigError(f"{_variable(info)}={raw!r} must be one of {', '.join(allowed)}")
        return raw

    return BeforeValidator(parse)


def _checked(check: Callable[[str, str], str]) -> AfterValidator:
    """A string passed through ``check(value, variable)``, e.g. ``validate_bucket``."""

    def run(value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else check(value, _variable(info))

    return AfterValidator(run)


def _salt_if_hashing(value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
    if value is None and info.data.get("include_pii_hashes"):
        raise ConfigError(
            "PARTYHELP_INCLUDE_PII_HASHES is on but PARTYHELP_PII_SALT is not set "
            "(or PARTYHELP_PII_SALT_BLOCK names no Secret)"
        )
    return value


# Validators sit outside ``| None``, so that a bad value gives one error, not one per branch.
Count = Annotated[int, _whole()]
SecondsOrZero = Annotated[float, _seconds(allow_zero=True)]
OptionalSeconds = Annotated[float | None, _seconds(allow_zero=False)]
Flag = Annotated[bool, BeforeValidator(_boolean)]
OptionalBlockName = Annotated[str | None, _checked(validate_block_name)]


def _shown(default: str) -> dict[str, Any]:
    """How the README shows a default that the value alone does not say."""
    return {"shown_default": default}


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
    ssl_mode: SslMode = "preferred"
    ssl_ca: str | None = None  # PEM files
    ssl_cert: str | None = None
    ssl_key: str | None = None
    # Where the password came from, for a refused login's message (never the password).
    password_block: str | None = None


class Settings(BaseModel):
    """Everything the sync reads from its environment. The order is the README's."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    mysql_host: str = Field(
        validation_alias="PARTYHELP_MYSQL_HOST", description="source database host"
    )
    mysql_port: Annotated[int, _whole(1, 65535)] = Field(
        3306, validation_alias="PARTYHELP_MYSQL_PORT", description="source database port"
    )
    mysql_user: str = Field(
        validation_alias="PARTYHELP_MYSQL_USER", description="a SELECT-only user"
    )
    mysql_password: SecretStr = Field(
        SecretStr(""),
        repr=False,
        validation_alias="PARTYHELP_MYSQL_PASSWORD",
        description="its password (unless `PARTYHELP_MYSQL_PASSWORD_BLOCK` is set)",
    )
    mysql_password_block: OptionalBlockName = Field(
        None,
        validation_alias="PARTYHELP_MYSQL_PASSWORD_BLOCK",
        description="a Prefect `Secret` block holding the password; it wins over "
        "`PARTYHELP_MYSQL_PASSWORD`",
    )
    mysql_database: str = Field(
        validation_alias="PARTYHELP_MYSQL_DATABASE", description="source database"
    )
    mysql_driver: Annotated[DriverChoice, _one_of(DriverChoice)] = Field(
        "auto",
        validation_alias="PARTYHELP_MYSQL_DRIVER",
        description="`mysqlclient` (C, fast; the `[fast]` extra) when it is installed, else "
        "`pymysql` (pure Python, slower, same output); or name one of them",
    )
    mysql_ssl_mode: Annotated[SslMode, _one_of(SslMode)] = Field(
        "preferred",
        validation_alias="PARTYHELP_MYSQL_SSL_MODE",
        description="TLS to MySQL, in MySQL's own terms: `disabled`, `preferred`, `required`, "
        "`verify_ca` or `verify_identity` (recommended across any network)",
    )
    mysql_ssl_ca: str | None = Field(
        None,
        validation_alias="PARTYHELP_MYSQL_SSL_CA",
        description="PEM file of the CA that signed the server's certificate",
    )
    mysql_ssl_ca_block: OptionalBlockName = Field(
        None,
        validation_alias="PARTYHELP_MYSQL_SSL_CA_BLOCK",
        description="or a Prefect `Secret` block holding that PEM",
    )
    mysql_ssl_cert: str | None = Field(
        None,
        validation_alias="PARTYHELP_MYSQL_SSL_CERT",
        description="PEM file of a client certificate, where the server asks for one",
    )
    mysql_ssl_cert_block: OptionalBlockName = Field(
        None,
        validation_alias="PARTYHELP_MYSQL_SSL_CERT_BLOCK",
        description="or a Prefect `Secret` block holding that PEM",
    )
    mysql_ssl_key: str | None = Field(
        None,
        repr=False,
        validation_alias="PARTYHELP_MYSQL_SSL_KEY",
        description="PEM file of the client certificate's key",
    )
    mysql_ssl_key_block: OptionalBlockName = Field(
        None,
        validation_alias="PARTYHELP_MYSQL_SSL_KEY_BLOCK",
        description="or a Prefect `Secret` block holding that PEM",
    )
    gcs_bucket: Annotated[str, _checked(validate_bucket)] = Field(
        validation_alias="PARTYHELP_GCS_BUCKET", description="bucket of the exports"
    )
    gcs_prefix: Annotated[str, _checked(validate_prefix)] = Field(
        "partyhelp",
        validation_alias="PARTYHELP_GCS_PREFIX",
        description="object prefix of the exports",
    )
    bq_project: Annotated[str, _checked(validate_project)] = Field(
        validation_alias="PARTYHELP_BQ_PROJECT",
        json_schema_extra=_shown(f"required (`{LOCAL_PROJECT}` with emulators)"),
        description="Google Cloud project of the dataset, the jobs and the GCS client",
    )
    bq_dataset: Annotated[str, _checked(validate_dataset)] = Field(
        "partyhelp",
        validation_alias="PARTYHELP_BQ_DATASET",
        description="dataset of the reporting tables",
    )
    bq_location: str = Field(
        "australia-southeast1",
        validation_alias="PARTYHELP_BQ_LOCATION",
        description="location of a dataset the flow creates; jobs on an existing dataset run "
        "in its own location (logged when they differ)",
    )
    gcp_credentials_block: OptionalBlockName = Field(
        None,
        validation_alias="PARTYHELP_GCP_CREDENTIALS_BLOCK",
        description="a prefect-gcp `GcpCredentials` block; else application default credentials",
    )
    timezone: Annotated[str, _checked(validate_timezone)] = Field(
        "Australia/Melbourne",
        validation_alias="PARTYHELP_TIMEZONE",
        description="reporting time zone: a sync from MySQL is a snapshot of today there, "
        "its `sync_date`; the financial-period view takes local dates there",
    )
    history_days: Annotated[int, _whole(0)] = Field(
        400,
        validation_alias="PARTYHELP_HISTORY_DAYS",
        description="days a `ph_<table>_history` partition is kept (BigQuery's partition "
        "expiration; the exports' retention); `0` keeps them for ever",
    )
    clock_date: Annotated[dt.date | None, BeforeValidator(_day)] = Field(
        None,
        validation_alias="PARTYHELP_CLOCK_DATE",
        description="a test clock: the day a sync from MySQL takes as today (YYYY-MM-DD), "
        "for tests and drills that make successive days; never set in "
        "production (`check` warns when it is)",
    )
    include_pii_hashes: Flag = Field(
        False,
        validation_alias="PARTYHELP_INCLUDE_PII_HASHES",
        description="opt-in `email_sha256`, `phone_sha256` in `ph_leads` (see PII below)",
    )
    pii_salt: Annotated[SecretStr | None, AfterValidator(_salt_if_hashing)] = Field(
        None,
        repr=False,
        validate_default=True,
        validation_alias="PARTYHELP_PII_SALT",
        description="HMAC key for those hashes (unless `PARTYHELP_PII_SALT_BLOCK` is set)",
    )
    pii_salt_block: OptionalBlockName = Field(
        None,
        validation_alias="PARTYHELP_PII_SALT_BLOCK",
        description="a Prefect `Secret` block holding that key; it wins over `PARTYHELP_PII_SALT`",
    )
    # 32 MiB: a part is finalised in GCS (and verified) while the next one streams, so only
    # the last part's finalisation follows the last row; a failed part resends at most this
    # much; 10,000 URIs a load job still cover 300 GiB a table.
    part_max_bytes: Annotated[int, _whole(1024)] = Field(
        32 * 1024 * 1024,
        validation_alias="PARTYHELP_PART_MAX_BYTES",
        description="an Avro part rolls over past this size",
    )
    load_max_uris: Annotated[int, _whole(1, BIGQUERY_MAX_LOAD_URIS)] = Field(
        BIGQUERY_MAX_LOAD_URIS,
        validation_alias="PARTYHELP_LOAD_MAX_URIS",
        description="parts one BigQuery load job takes (BigQuery's own limit is 10,000); more "
        "parts load in several jobs into the staging table before it is checked "
        "and published",
    )
    chunk_rows: Count = Field(
        5_000_000,
        validation_alias="PARTYHELP_CHUNK_ROWS",
        description="primary-key span of one export chunk (one task, one snapshot)",
    )
    batch_rows: Count = Field(
        20_000,
        validation_alias="PARTYHELP_BATCH_ROWS",
        description="rows fetched and encoded at a time",
    )
    progress_seconds: SecondsOrZero = Field(
        10.0,
        validation_alias="PARTYHELP_PROGRESS_SECONDS",
        description="interval of the export progress lines (rows so far of the source's "
        "count, rate, ETA) and of its progress artifact; `0`: every batch",
    )
    task_retries: Annotated[int, _whole(0)] = Field(
        3,
        validation_alias="PARTYHELP_TASK_RETRIES",
        description="retries of each task, for failures a retry can heal",
    )
    retry_delay_seconds: SecondsOrZero = Field(
        10.0,
        validation_alias="PARTYHELP_RETRY_DELAY_SECONDS",
        description="backoff base (exponential, with jitter)",
    )
    bq_retry_seconds: OptionalSeconds = Field(
        None,
        validation_alias="PARTYHELP_BQ_RETRY_SECONDS",
        json_schema_extra=_shown("unset (the library's 600 s)"),
        description="how long one BigQuery API call keeps retrying a lost connection before "
        "the task's own retry takes over; a BigQuery down at the run's start "
        "fails it in this window, with no task retry",
    )
    gcs_retry_seconds: OptionalSeconds = Field(
        None,
        validation_alias="PARTYHELP_GCS_RETRY_SECONDS",
        json_schema_extra=_shown("unset (the library's 120 s)"),
        description="the same for one upload of a part or a manifest to GCS",
    )
    flow_timeout_seconds: Annotated[float, _seconds(allow_zero=False)] = Field(
        4 * 3600.0,
        validation_alias="PARTYHELP_FLOW_TIMEOUT_SECONDS",
        description="a run still going after this long ends TimedOut (which alerts)",
    )
    max_row_drop_percent: Annotated[int, _whole(0, 100)] = Field(
        20,
        validation_alias="PARTYHELP_MAX_ROW_DROP_PERCENT",
        description="a table whose rows fall more than this below its last published count "
        "is not published (the run fails naming both counts); "
        "`--allow-row-drop` publishes anyway",
    )
    task_runner: Annotated[TaskRunnerName, _one_of(TaskRunnerName)] = Field(
        "threads",
        validation_alias="PARTYHELP_TASK_RUNNER",
        description="or `dask` (see Scaling out)",
    )
    max_workers: Count = Field(
        8,
        validation_alias="PARTYHELP_MAX_WORKERS",
        description="threads of the default task runner",
    )
    dask_address: str | None = Field(
        None,
        validation_alias="PARTYHELP_DASK_ADDRESS",
        description="with `dask`: the scheduler of an existing cluster, e.g. "
        "`tcp://scheduler:8786`; unset: a local cluster",
    )
    dask_workers: Count = Field(
        2,
        validation_alias="PARTYHELP_DASK_WORKERS",
        description="with `dask` and no address: worker processes of the local cluster",
    )
    settings_variable: Annotated[str | None, _checked(validate_variable_name)] = Field(
        None,
        validation_alias="PARTYHELP_SETTINGS_VARIABLE",
        description="a Prefect Variable, a JSON object of these settings (secrets excepted), "
        "that fills each setting the environment leaves unset; the deployments "
        "of `prefect.yaml` name `partyhelp_settings` (docs/OPERATIONS.md, Deploy)",
    )
    storage_emulator_host: str | None = Field(
        None,
        validation_alias="STORAGE_EMULATOR_HOST",
        description="point the GCS client at an emulator, with anonymous credentials",
    )
    bigquery_emulator_host: str | None = Field(
        None,
        validation_alias="BIGQUERY_EMULATOR_HOST",
        description="the same for the BigQuery client",
    )

    @model_validator(mode="before")
    @classmethod
    def _local_project(cls, data: Any) -> Any:
        """With emulators, the project defaults to ``partyhelp-local``."""
        if (
            isinstance(data, dict)
            and not data.get("PARTYHELP_BQ_PROJECT")
            and any(data.get(name) for name in EMULATOR_VARIABLES)
        ):
            return {**data, "PARTYHELP_BQ_PROJECT": LOCAL_PROJECT}
        return data

    @property
    def mysql(self) -> MySQLSettings:
        """How to reach the source database."""
        return MySQLSettings(
            host=self.mysql_host,
            port=self.mysql_port,
            user=self.mysql_user,
            password=self.mysql_password,
            database=self.mysql_database,
            driver=chosen_driver(self.mysql_driver),
            ssl_mode=self.mysql_ssl_mode,
            ssl_ca=self.mysql_ssl_ca,
            ssl_cert=self.mysql_ssl_cert,
            ssl_key=self.mysql_ssl_key,
            password_block=self.mysql_password_block,
        )

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


# ------------------------------------------------------------------------- reading


def _variable_of(declared: FieldInfo) -> str:
    alias = declared.validation_alias
    assert isinstance(alias, str), "every setting names its variable"
    return alias


def _is_secret(declared: FieldInfo) -> bool:
    return SecretStr in (declared.annotation, *get_args(declared.annotation))


def _present(env: Mapping[str, str], fields: Mapping[str, FieldInfo]) -> dict[str, str]:
    """The declared variables that are set (not empty); secrets as given, others stripped."""
    values: dict[str, str] = {}
    for declared in fields.values():
        variable = _variable_of(declared)
        raw = env.get(variable, "")
        value = raw if _is_secret(declared) else raw.strip()
        if value:
            values[variable] = value
    return values


def _validate(model: type[BaseModel], values: dict[str, str]) -> BaseModel:
    """``model`` from ``values``, or one ``ConfigError`` naming every bad variable."""
    try:
        return model.model_validate(values)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            variable = ".".join(str(part) for part in item["loc"])
            cause = item.get("ctx", {}).get("error")
            if isinstance(cause, ConfigError):
                problems.append(str(cause))
            elif item["type"] == "missing":
                problems.append(f"{variable} {_REQUIRED}")
            else:  # not reached by the declared rules; the value is left out (a secret?)
                problems.append(f"{variable}: {item['msg']}")
        raise ConfigError("; ".join(problems)) from None


# ------------------------------------------------ the settings Variable of a deployment
#
# A deployment's environment names a Prefect Variable (PARTYHELP_SETTINGS_VARIABLE), a JSON
# object of PARTYHELP_* names and values, written by `python -m scripts.setup
# --settings-variable NAME`. Precedence: a setting set (not empty) in the process's own
# environment wins; the Variable fills every setting the environment leaves unset; then the
# declared default. So the Variable is the production source, and a per-run job variable or
# a worker's environment can still override one setting, visibly. Secrets never go in it:
# they stay in Secret blocks, which the Variable names.

SETTINGS_VARIABLE = "PARTYHELP_SETTINGS_VARIABLE"
_SETUP_HINT = "python -m scripts.setup --settings-variable {name} (docs/OPERATIONS.md, Deploy)"


def variable_settings() -> list[str]:
    """The variables a settings Variable may hold: every declared ``PARTYHELP_*`` setting
    but the secrets and ``PARTYHELP_SETTINGS_VARIABLE`` itself, in declaration order."""
    return [
        _variable_of(d)
        for d in Settings.model_fields.values()
        if _variable_of(d).startswith("PARTYHELP_")
        and not _is_secret(d)
        and _variable_of(d) != SETTINGS_VARIABLE
    ]


def _as_text(value: Any) -> str:
    """A JSON value as the environment would hold it: ``true``, ``3``, ``2.5``, text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def settings_in_variable(name: str, value: Any) -> dict[str, str]:
    """The settings a Variable's value holds, checked: a JSON object whose keys are
    ``variable_settings()`` and whose values are text, numbers, booleans or null."""
    where = f"Prefect Variable {name!r}"
    if not isinstance(value, dict):
        raise ConfigError(
            f"{where} must hold a JSON object of PARTYHELP_* settings, "
            f"not {type(value).__name__}: rewrite it with " + _SETUP_HINT.format(name=name)
        )
    allowed, secrets = (
        set(variable_settings()),
        {_variable_of(d) for d in Settings.model_fields.values() if _is_secret(d)},
    )
    problems = []
    for key, raw in value.items():
        if key in secrets:
            problems.append(
                f"{key} is a secret: keep it in a Secret block named by "
                f"{key}_BLOCK, never in a Variable"
            )
        elif key not in allowed:
            problems.append(f"{key} is not a setting it may hold (see README, Configuration)")
        elif isinstance(raw, (dict, list)):
            problems.append(f"{key} must be text, a number or a boolean")
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))
    return {key: text for key, raw in value.items() if (text := _as_text(raw).strip())}


def read_settings_variable(name: str) -> dict[str, str]:
    """The settings held by the Prefect Variable ``name``, read through the Prefect API
    (``PREFECT_API_URL``) now; a ``ConfigError`` naming it if it is missing or unreadable."""
    from prefect.client.orchestration import get_client

    validate_variable_name(name)
    try:
        with get_client(sync_client=True) as client:
            stored = client.read_variable_by_name(name)
    except Exception as exc:  # the API unreachable or refusing: one line, naming what
        cause = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(
            f"{SETTINGS_VARIABLE}={name}: cannot read the Prefect Variable "
            f"through the Prefect API ({cause}); check PREFECT_API_URL"
        ) from None
    if stored is None:
        raise ConfigError(
            f"{SETTINGS_VARIABLE}={name} names no Prefect Variable: write it "
            "with " + _SETUP_HINT.format(name=name)
        )
    return settings_in_variable(name, stored.value)


@cache
def _settings_variable_once(name: str, api_url: str) -> dict[str, str]:
    return read_settings_variable(name)


def with_settings_variable(env: Mapping[str, str]) -> Mapping[str, str]:
    """``env``, its unset settings filled from the Variable its ``PARTYHELP_SETTINGS_VARIABLE``
    names (when set). A process reads the Variable once (per API), so a run sees one set of
    settings, even if the Variable is edited while it runs."""
    name = env.get(SETTINGS_VARIABLE, "").strip()
    if not name:
        return env
    validate_variable_name(name)
    from prefect.settings import PREFECT_API_URL

    stored = _settings_variable_once(name, str(PREFECT_API_URL.value() or ""))
    return {**stored, **{key: value for key, value in env.items() if value.strip()}}


def load_settings(
    env: Mapping[str, str] | None = None,
    *,
    mysql_password: str | None = None,
    pii_salt: str | None = None,
) -> Settings:
    """Read and validate every setting; ``os.environ`` when ``env`` is None, its unset
    settings filled from the Prefect Variable that ``PARTYHELP_SETTINGS_VARIABLE`` names.

    ``mysql_password`` and ``pii_salt`` (when not empty) override the environment: the flow
    reads them from the Prefect ``Secret`` blocks that ``PARTYHELP_MYSQL_PASSWORD_BLOCK`` and
    ``PARTYHELP_PII_SALT_BLOCK`` name, and passes them in here.
    """
    source = os.environ if env is None else env
    values = _present(with_settings_variable(source), Settings.model_fields)
    if mysql_password is not None:
        values["PARTYHELP_MYSQL_PASSWORD"] = mysql_password
    if pii_salt:
        values["PARTYHELP_PII_SALT"] = pii_salt
    try:
        settings = _validate(Settings, values)
    except ConfigError as exc:
        if not values.get(SETTINGS_VARIABLE):
            raise
        raise ConfigError(
            f"{exc} (settings of the environment and of Prefect Variable "
            f"{values[SETTINGS_VARIABLE]!r})"
        ) from None
    assert isinstance(settings, Settings)
    return settings


def check_deployment_settings(
    variable: str, job_timeout_seconds: int | None = None
) -> dict[str, Any]:
    """A ``prefect.yaml`` deployment step: the Variable ``variable`` holds every setting a
    run needs, valid, and the Secret blocks it names exist; else ``prefect deploy`` fails
    naming each problem. With ``job_timeout_seconds`` (a Cloud Run job's), the flow's
    timeout must end the run first, so that it ends TimedOut (which alerts), not killed."""
    values = read_settings_variable(variable)  # now, not a cached copy
    problems = [
        f"{name} names no {kind} block"
        for name, kind, block in _named_blocks(values)
        if not _block_exists(kind, block)
    ]
    if not values.get("PARTYHELP_MYSQL_PASSWORD_BLOCK"):
        problems.append(
            "PARTYHELP_MYSQL_PASSWORD_BLOCK is not set: a deployment takes the "
            "MySQL password from a Secret block only"
        )
    salt = "checked-above" if values.get("PARTYHELP_PII_SALT_BLOCK") else None
    try:
        settings = load_settings(values, pii_salt=salt)
    except ConfigError as exc:
        problems.insert(0, str(exc))
        settings = None
    if (
        settings
        and job_timeout_seconds is not None
        and job_timeout_seconds < settings.flow_timeout_seconds + JOB_TIMEOUT_MARGIN_SECONDS
    ):
        problems.append(
            f"the job timeout, {job_timeout_seconds} s, must exceed "
            f"PARTYHELP_FLOW_TIMEOUT_SECONDS={settings.flow_timeout_seconds:g} by "
            f"{JOB_TIMEOUT_MARGIN_SECONDS} s or more: raise `timeout` in prefect.yaml"
        )
    if problems:
        refused = ConfigError(
            f"Prefect Variable {variable!r}: "
            + "; ".join(problems)
            + "; fix it with "
            + _SETUP_HINT.format(name=variable)
        )
        # Prefect's CLI shows a failed step as a traceback: this line says it plainly first.
        print(f"deploy refused: {refused}", file=sys.stderr, flush=True)
        raise refused
    print(f"settings: Prefect Variable {variable!r} holds {len(values)} valid settings", flush=True)
    return {"variable": variable, "settings": sorted(values)}


# A Cloud Run job outlives the flow's own timeout by this much, so the flow ends TimedOut.
JOB_TIMEOUT_MARGIN_SECONDS = 300
_BLOCK_KINDS = {"PARTYHELP_GCP_CREDENTIALS_BLOCK": "gcp-credentials"}


def _named_blocks(values: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(setting, block type slug, block name) of every block the settings name."""
    return [
        (name, _BLOCK_KINDS.get(name, "secret"), block)
        for name, block in values.items()
        if name.endswith("_BLOCK") and _BLOCK_NAME.match(block)
    ]


def _block_exists(kind: str, name: str) -> bool:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_block_document_by_name(name, kind, include_secrets=False)
        except ObjectNotFound:
            return False
    return True


@cache
def _one_setting_model(name: str) -> type[BaseModel]:
    declared = Settings.model_fields[name]
    definition: dict[str, Any] = {name: (declared.annotation, declared)}
    return create_model(f"Setting_{name}", __config__=ConfigDict(frozen=True), **definition)


def read_setting(name: str, env: Mapping[str, str] | None = None) -> Any:
    """One setting, by its field name (e.g. ``"task_retries"``), validated as
    ``load_settings`` validates it; ``os.environ`` when ``env`` is None.

    For options Prefect fixes at import time (a task's retries, the flow's task runner), so
    that a bad one stops the command naming its variable. Rules that join several settings
    (the project with emulators, the salt with PII hashes) apply in ``load_settings`` only.
    """
    if name not in Settings.model_fields:
        raise KeyError(f"{name!r} is not a declared setting")
    fields = {name: Settings.model_fields[name]}
    values = _present(with_settings_variable(os.environ if env is None else env), fields)
    return getattr(_validate(_one_setting_model(name), values), name)


def import_time_setting(name: str) -> Any:
    """``read_setting`` for an option fixed when a module is imported (a task's retries, the
    flow's task runner and timeout): a bad value gives the declared default here, so that
    importing the flow never fails with a traceback. ``load_settings``, which the command
    and the flow run before anything else, reports it in its one line."""
    try:
        return read_setting(name)
    except ConfigError:
        return Settings.model_fields[name].default


# ------------------------------------------------------------------------- documenting


@dataclass(frozen=True)
class DeclaredSetting:
    """One setting as the README and ``prefect.yaml`` list it."""

    name: str  # the field of ``Settings``
    variable: str
    default: str  # as the README shows it
    meaning: str
    secret: bool


def _shown_default(declared: FieldInfo) -> str:
    extra = declared.json_schema_extra
    shown = extra.get("shown_default") if isinstance(extra, dict) else None
    if isinstance(shown, str):
        return shown
    default = declared.default
    if declared.is_required():
        return "required"
    if default is None:
        return "unset"
    if isinstance(default, SecretStr):
        return "empty" if not default.get_secret_value() else "set"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, float):
        return f"`{default:g}`"
    return f"`{default}`"


def declared_settings() -> list[DeclaredSetting]:
    """Every setting, in declaration order."""
    return [
        DeclaredSetting(
            name,
            _variable_of(declared),
            _shown_default(declared),
            declared.description or "",
            _is_secret(declared),
        )
        for name, declared in Settings.model_fields.items()
    ]


def settings_table() -> list[tuple[str, str, str]]:
    """(variable, default as shown, meaning) of every setting: the README's table."""
    return [(s.variable, s.default, s.meaning) for s in declared_settings()]
