"""Settings that are not identifiers: each bad value fails at start, naming its variable.

Identifiers (dataset, bucket, prefix, project) are checked in ``test_security.py``. Some
settings are read when the modules are imported (a task's retry options are fixed when it
is decorated, the flow's task runner when the flow is): a bad one must stop the command
with the variable's name, not a bare ``ValueError`` from deep in an import.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from partyhelp_pipeline.settings import ConfigError, load_settings, read_setting
from tests.conftest import ROOT

VALID = {"PARTYHELP_MYSQL_HOST": "h", "PARTYHELP_MYSQL_USER": "u",
         "PARTYHELP_MYSQL_DATABASE": "d", "PARTYHELP_GCS_BUCKET": "ok-bucket",
         "PARTYHELP_BQ_PROJECT": "ok-project"}


@pytest.mark.parametrize(("variable", "value", "why"), [
    ("PARTYHELP_TIMEZONE", "Mars/Olympus_Mons", "is not an IANA time zone name"),
    ("PARTYHELP_TIMEZONE", "../../etc/passwd", "is not an IANA time zone name"),
    ("PARTYHELP_MYSQL_PORT", "3306x", "is not an integer"),
    ("PARTYHELP_CHUNK_ROWS", "0", "must be at least 1"),
    ("PARTYHELP_PART_MAX_BYTES", "100", "must be at least 1024"),
    ("PARTYHELP_LOAD_MAX_URIS", "10001", "must be at most 10000"),
    ("PARTYHELP_LOAD_MAX_URIS", "0", "must be at least 1"),
    ("PARTYHELP_INCLUDE_PII_HASHES", "maybe", "is not a boolean"),
    ("PARTYHELP_MYSQL_DRIVER", "odbc", "must be one of mysqlclient, pymysql"),
])
def test_a_bad_setting_is_refused_naming_the_variable(variable: str, value: str,
                                                      why: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{variable}=.*{why}"):
        load_settings({**VALID, variable: value})


def test_the_reporting_time_zone_defaults_to_melbourne_and_takes_any_iana_name() -> None:
    assert load_settings(VALID).timezone == "Australia/Melbourne"
    assert load_settings({**VALID, "PARTYHELP_TIMEZONE": "Australia/Perth"}).timezone == \
        "Australia/Perth"


# bq_retry_seconds: unset by default, above 0; retry_delay_seconds: 10 by default, 0 or more.
SECONDS = {"bq_retry_seconds": "PARTYHELP_BQ_RETRY_SECONDS",
           "retry_delay_seconds": "PARTYHELP_RETRY_DELAY_SECONDS"}


@pytest.mark.parametrize(("name", "raw", "expected"), [
    ("bq_retry_seconds", "", None), ("retry_delay_seconds", "", 10.0),
    ("bq_retry_seconds", "2.5", 2.5), ("retry_delay_seconds", "0", 0.0),
    ("bq_retry_seconds", "0", ConfigError), ("retry_delay_seconds", "-1", ConfigError),
    ("retry_delay_seconds", "nan", ConfigError), ("bq_retry_seconds", "inf", ConfigError),
    ("bq_retry_seconds", "ten", ConfigError),
])
def test_seconds_settings(name: str, raw: str, expected: object) -> None:
    variable = SECONDS[name]
    env = {variable: raw}
    if expected is ConfigError:
        with pytest.raises(ConfigError, match=rf"^{variable} must be a number of seconds"):
            read_setting(name, env)
        with pytest.raises(ConfigError, match=rf"^{variable} must be a number of seconds"):
            load_settings({**VALID, **env})
    else:
        assert read_setting(name, env) == expected
        assert getattr(load_settings({**VALID, **env}), name) == expected


def test_every_bad_or_missing_setting_is_named_at_once_in_declaration_order() -> None:
    env = {"PARTYHELP_MYSQL_PORT": "x", "PARTYHELP_TASK_RETRIES": "-1",
           "PARTYHELP_GCS_BUCKET": "ok-bucket", "PARTYHELP_BQ_PROJECT": "ok-project"}
    with pytest.raises(ConfigError) as refused:
        load_settings(env)
    required = "is not set; it is required (see README, Configuration)"
    assert str(refused.value) == "; ".join([
        f"PARTYHELP_MYSQL_HOST {required}",
        "PARTYHELP_MYSQL_PORT='x' is not an integer",
        f"PARTYHELP_MYSQL_USER {required}",
        f"PARTYHELP_MYSQL_DATABASE {required}",
        "PARTYHELP_TASK_RETRIES=-1 must be at least 0",
    ])


def test_an_empty_value_counts_as_unset() -> None:
    blank = {**VALID, "PARTYHELP_MYSQL_PORT": "", "PARTYHELP_TASK_RUNNER": " ",
             "PARTYHELP_GCS_PREFIX": ""}
    settings = load_settings(blank)
    assert (settings.mysql.port, settings.task_runner, settings.gcs_prefix) == \
        (3306, "threads", "partyhelp")
    with pytest.raises(ConfigError, match=r"^PARTYHELP_MYSQL_HOST is not set; it is required"):
        load_settings({**VALID, "PARTYHELP_MYSQL_HOST": "  "})


def test_read_setting_validates_one_setting_as_load_settings_does() -> None:
    assert read_setting("task_retries", {}) == 3
    assert read_setting("task_runner", {"PARTYHELP_TASK_RUNNER": "dask"}) == "dask"
    assert read_setting("dask_address", {}) is None
    with pytest.raises(ConfigError, match=r"^PARTYHELP_DASK_WORKERS='two' is not an integer$"):
        read_setting("dask_workers", {"PARTYHELP_DASK_WORKERS": "two"})
    with pytest.raises(KeyError):
        read_setting("no_such_setting", {})


def test_secrets_are_kept_as_given_and_never_shown() -> None:
    settings = load_settings({**VALID, "PARTYHELP_MYSQL_PASSWORD": " p w ",
                              "PARTYHELP_INCLUDE_PII_HASHES": "true",
                              "PARTYHELP_PII_SALT": "s4lt"})
    assert settings.mysql.password.get_secret_value() == " p w "
    assert settings.pii_salt is not None and settings.pii_salt.get_secret_value() == "s4lt"
    assert "p w" not in repr(settings) and "s4lt" not in repr(settings)
    assert "p w" not in repr(settings.mysql)
    assert load_settings(VALID, mysql_password="from-block").mysql.password \
        .get_secret_value() == "from-block"


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("PARTYHELP_MAX_WORKERS", "eight", "PARTYHELP_MAX_WORKERS='eight' is not an integer"),
    ("PARTYHELP_TASK_RETRIES", "-1", "PARTYHELP_TASK_RETRIES=-1 must be at least 0"),
    ("PARTYHELP_TASK_RUNNER", "celery",
     "PARTYHELP_TASK_RUNNER='celery' must be one of threads, dask"),
])
def test_a_bad_setting_read_at_import_stops_the_command_naming_it(variable: str, value: str,
                                                                   message: str) -> None:
    """Read when the flow module is imported, yet reported like any other setting: one
    line, exit 2, before any flow run, no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARTYHELP_")}
    result = subprocess.run([sys.executable, "-m", "flows.partyhelp_sync", "--date",
                             "2026-11-25"], cwd=ROOT,
                            env={**env, **VALID, "PARTYHELP_CLOCK_DATE": "2026-11-25",
                                 variable: value},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].endswith(message), result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "Beginning flow run" not in result.stderr
