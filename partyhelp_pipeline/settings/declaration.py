"""The one declaration of the settings: each field names its variable (``validation_alias``),
its type and the rules of its value, its default and its meaning (the README's table).

A bad value is refused by a rule that names the variable, so that ``load_settings`` can report
every bad variable at once in one line.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, get_args

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationInfo,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from partyhelp_pipeline.settings.rules import (
    BIGQUERY_MAX_LOAD_URIS,
    EMULATOR_VARIABLES,
    LOCAL_PROJECT,
    ConfigError,
    Driver,
    DriverChoice,
    SecretBlockType,
    SslMode,
    TaskRunnerName,
    chosen_driver,
    quote_table_ref,
    validate_block_name,
    validate_bucket,
    validate_dataset,
    validate_prefix,
    validate_project,
    validate_table,
    validate_timezone,
    validate_variable_name,
)

# ------------------------------------------------ value rules, naming the variable they check


def _variable(info: ValidationInfo) -> str:
    """The environment variable of the field being validated."""
    declared = SettingsDeclaration.model_fields.get(info.field_name or "")
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


def _seconds(*, allow_zero: bool, unit: str = "seconds") -> BeforeValidator:
    """A finite number of ``unit`` above 0 (or 0 too, with ``allow_zero``)."""

    def parse(raw: Any, info: ValidationInfo) -> float | None:
        if raw is None:
            return None
        try:
            value = float(raw)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            bound = "of 0 or more" if allow_zero else "above 0"
            raise ConfigError(f"{_variable(info)} must be a number of {unit} {bound}, got {raw!r}")
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


# Frozen; unknown variables ignored; names exact (os.environ's are); an empty variable unset.
SETTINGS_CONFIG = SettingsConfigDict(
    frozen=True, extra="ignore", case_sensitive=True, env_ignore_empty=True
)


class SettingsDeclaration(BaseSettings):
    """Every setting the sync reads, in the README's order: the one declaration. Not read
    itself: ``Settings`` (``partyhelp_pipeline.settings.loading``) reads it from its sources."""

    model_config = SETTINGS_CONFIG

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
    secret_block_type: Annotated[SecretBlockType, _one_of(SecretBlockType)] = Field(
        "secret",
        validation_alias="PARTYHELP_SECRET_BLOCK_TYPE",
        description="the type of the blocks `PARTYHELP_MYSQL_PASSWORD_BLOCK` and "
        "`PARTYHELP_PII_SALT_BLOCK` name: `secret` (Prefect `Secret`, the value in "
        "Prefect's database) or `gcp-secret` (prefect-gcp `GcpSecret`: the value stays in "
        "GCP Secret Manager, the block names it)",
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
    max_source_age_hours: Annotated[float | None, _seconds(allow_zero=True, unit="hours")] = Field(
        None,
        validation_alias="PARTYHELP_MAX_SOURCE_AGE_HOURS",
        json_schema_extra=_shown("unset (each table's `error_after`)"),
        description="source freshness: a table whose newest row (its spec's freshness "
        "column) is older than this at the export's snapshot is not published (the run "
        "fails naming it; `--allow-stale` publishes anyway); overrides every table's "
        "`error_after` and applies from the first run; `0` turns the freshness check off",
    )
    warn_source_age_hours: Annotated[float | None, _seconds(allow_zero=False, unit="hours")] = (
        Field(
            None,
            validation_alias="PARTYHELP_WARN_SOURCE_AGE_HOURS",
            json_schema_extra=_shown("unset (each table's `warn_after`)"),
            description="source freshness: a table older than this is a WARNING (the run "
            "goes on); overrides every table's `warn_after`",
        )
    )
    anomaly_window_days: Count = Field(
        28,
        validation_alias="PARTYHELP_ANOMALY_WINDOW_DAYS",
        description="volume anomalies: each table's metrics are judged against its "
        "published days (`ph_sync_metrics`) of this many days before",
    )
    anomaly_min_days: Count = Field(
        7,
        validation_alias="PARTYHELP_ANOMALY_MIN_DAYS",
        description="volume anomalies: no metric is judged before this many published "
        "days of it are on record",
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
        """True when a Google client points at a local emulator."""
        return bool(self.storage_emulator_host or self.bigquery_emulator_host)

    def table_ref(self, table: str) -> str:
        """``project.dataset.table`` (unquoted) for client calls."""
        return f"{self.bq_project}.{self.bq_dataset}.{validate_table(table)}"

    def quoted_table_ref(self, table: str) -> str:
        """Back-quoted ``project.dataset.table`` for SQL text."""
        return quote_table_ref(self.bq_project, self.bq_dataset, table)
