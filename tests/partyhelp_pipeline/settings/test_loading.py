"""Settings that are not identifiers: each bad value fails at start, naming its variable.

Identifiers (dataset, bucket, prefix, project) are checked in ``scenarios/test_security.py``. Some
settings are read when the modules are imported (a task's retry options are fixed when it
is decorated, the flow's task runner when the flow is): a bad one must stop the command
with the variable's name, not a bare ``ValueError`` from deep in an import.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from partyhelp_pipeline.settings import ConfigError, load_settings, read_setting
from tests.conftest import ROOT

VALID = {
    "PARTYHELP_MYSQL_HOST": "h",
    "PARTYHELP_MYSQL_USER": "u",
    "PARTYHELP_MYSQL_DATABASE": "d",
    "PARTYHELP_GCS_BUCKET": "ok-bucket",
    "PARTYHELP_BQ_PROJECT": "ok-project",
}


@pytest.mark.parametrize(
    ("variable", "value", "why"),
    [
        ("PARTYHELP_TIMEZONE", "Mars/Olympus_Mons", "is not an IANA time zone name"),
        ("PARTYHELP_TIMEZONE", "../../etc/passwd", "is not an IANA time zone name"),
        ("PARTYHELP_MYSQL_PORT", "3306x", "is not an integer"),
        ("PARTYHELP_CHUNK_ROWS", "0", "must be at least 1"),
        ("PARTYHELP_PART_MAX_BYTES", "100", "must be at least 1024"),
        ("PARTYHELP_LOAD_MAX_URIS", "10001", "must be at most 10000"),
        ("PARTYHELP_LOAD_MAX_URIS", "0", "must be at least 1"),
        ("PARTYHELP_INCLUDE_PII_HASHES", "maybe", "is not a boolean"),
        ("PARTYHELP_MYSQL_DRIVER", "odbc", "must be one of auto, mysqlclient, pymysql"),
    ],
)
def test_a_bad_setting_is_refused_naming_the_variable(variable: str, value: str, why: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{variable}=.*{why}"):
        load_settings({**VALID, variable: value})


def test_the_reporting_time_zone_defaults_to_melbourne_and_takes_any_iana_name() -> None:
    assert load_settings(VALID).timezone == "Australia/Melbourne"
    assert (
        load_settings({**VALID, "PARTYHELP_TIMEZONE": "Australia/Perth"}).timezone
        == "Australia/Perth"
    )


# bq_retry_seconds: unset by default, above 0; retry_delay_seconds: 10 by default, 0 or more.
SECONDS = {
    "bq_retry_seconds": "PARTYHELP_BQ_RETRY_SECONDS",
    "retry_delay_seconds": "PARTYHELP_RETRY_DELAY_SECONDS",
}


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("bq_retry_seconds", "", None),
        ("retry_delay_seconds", "", 10.0),
        ("bq_retry_seconds", "2.5", 2.5),
        ("retry_delay_seconds", "0", 0.0),
        ("bq_retry_seconds", "0", ConfigError),
        ("retry_delay_seconds", "-1", ConfigError),
        ("retry_delay_seconds", "nan", ConfigError),
        ("bq_retry_seconds", "inf", ConfigError),
        ("bq_retry_seconds", "ten", ConfigError),
    ],
)
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
    env = {
        "PARTYHELP_MYSQL_PORT": "x",
        "PARTYHELP_TASK_RETRIES": "-1",
        "PARTYHELP_GCS_BUCKET": "ok-bucket",
        "PARTYHELP_BQ_PROJECT": "ok-project",
    }
    with pytest.raises(ConfigError) as refused:
        load_settings(env)
    required = "is not set; it is required (see README, Configuration)"
    assert str(refused.value) == "; ".join(
        [
            f"PARTYHELP_MYSQL_HOST {required}",
            "PARTYHELP_MYSQL_PORT='x' is not an integer",
            f"PARTYHELP_MYSQL_USER {required}",
            f"PARTYHELP_MYSQL_DATABASE {required}",
            "PARTYHELP_TASK_RETRIES=-1 must be at least 0",
        ]
    )


def test_an_empty_value_counts_as_unset() -> None:
    blank = {
        **VALID,
        "PARTYHELP_MYSQL_PORT": "",
        "PARTYHELP_TASK_RUNNER": " ",
        "PARTYHELP_GCS_PREFIX": "",
    }
    settings = load_settings(blank)
    assert (settings.mysql.port, settings.task_runner, settings.gcs_prefix) == (
        3306,
        "threads",
        "partyhelp",
    )
    with pytest.raises(ConfigError, match=r"^PARTYHELP_MYSQL_HOST is not set; it is required"):
        load_settings({**VALID, "PARTYHELP_MYSQL_HOST": "  "})


def test_a_mapping_given_is_read_instead_of_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PARTYHELP_SETTINGS_VARIABLE", raising=False)
    for variable, value in {**VALID, "PARTYHELP_MYSQL_PORT": "3307"}.items():
        monkeypatch.setenv(variable, value)
    assert load_settings().mysql_port == read_setting("mysql_port") == 3307  # env None
    assert load_settings(VALID).mysql_port == read_setting("mysql_port", {}) == 3306
    with pytest.raises(ConfigError, match=r"^PARTYHELP_MYSQL_HOST is not set"):
        load_settings({k: v for k, v in VALID.items() if k != "PARTYHELP_MYSQL_HOST"})


def test_read_setting_validates_one_setting_as_load_settings_does() -> None:
    assert read_setting("task_retries", {}) == 3
    assert read_setting("task_runner", {"PARTYHELP_TASK_RUNNER": "dask"}) == "dask"
    assert read_setting("dask_address", {}) is None
    with pytest.raises(ConfigError, match=r"^PARTYHELP_DASK_WORKERS='two' is not an integer$"):
        read_setting("dask_workers", {"PARTYHELP_DASK_WORKERS": "two"})
    with pytest.raises(KeyError):
        read_setting("no_such_setting", {})


def test_secrets_are_kept_as_given_and_never_shown() -> None:
    settings = load_settings(
        {
            **VALID,
            "PARTYHELP_MYSQL_PASSWORD": " p w ",
            "PARTYHELP_INCLUDE_PII_HASHES": "true",
            "PARTYHELP_PII_SALT": "s4lt",
        }
    )
    assert settings.mysql.password.get_secret_value() == " p w "
    assert settings.pii_salt is not None and settings.pii_salt.get_secret_value() == "s4lt"
    assert "p w" not in repr(settings) and "s4lt" not in repr(settings)
    assert "p w" not in repr(settings.mysql)
    assert (
        load_settings(VALID, mysql_password="from-block").mysql.password.get_secret_value()
        == "from-block"
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PARTYHELP_MAX_WORKERS", "eight", "PARTYHELP_MAX_WORKERS='eight' is not an integer"),
        ("PARTYHELP_TASK_RETRIES", "-1", "PARTYHELP_TASK_RETRIES=-1 must be at least 0"),
        (
            "PARTYHELP_TASK_RUNNER",
            "celery",
            "PARTYHELP_TASK_RUNNER='celery' must be one of threads, dask",
        ),
    ],
)
def test_a_bad_setting_read_at_import_stops_the_command_naming_it(
    variable: str, value: str, message: str
) -> None:
    """Read when the flow module is imported, yet reported like any other setting: one
    line, exit 2, before any flow run, no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARTYHELP_")}
    result = subprocess.run(
        [sys.executable, "-m", "flows.partyhelp_sync", "--date", "2026-11-25"],
        cwd=ROOT,
        env={**env, **VALID, "PARTYHELP_CLOCK_DATE": "2026-11-25", variable: value},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].endswith(message), result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "Beginning flow run" not in result.stderr


# ------------------------------------------------ the settings Variable (local Prefect server)


@pytest.fixture
def settings_variable(stack: None) -> Iterator[Callable[[Any], str]]:
    """``write(value)``: a Prefect Variable of this test's own holding ``value``; its name."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import VariableCreate

    from partyhelp_pipeline.settings.sources import _settings_variable_once

    name = f"partyhelp_test_{os.urandom(4).hex()}"

    def write(value: Any) -> str:
        with get_client(sync_client=True) as client:
            client.delete_variable_by_name(name) if client.read_variable_by_name(name) else None
            client.create_variable(VariableCreate(name=name, value=value))
        _settings_variable_once.cache_clear()  # a process reads it once
        return name

    yield write
    with get_client(sync_client=True) as client:
        if client.read_variable_by_name(name):
            client.delete_variable_by_name(name)
    _settings_variable_once.cache_clear()


def test_the_settings_variable_fills_what_the_environment_leaves_unset(
    settings_variable: Callable[[Any], str],
) -> None:
    name = settings_variable(
        {
            **VALID,
            "PARTYHELP_MYSQL_PORT": 3307,
            "PARTYHELP_INCLUDE_PII_HASHES": False,
            "PARTYHELP_TASK_RETRIES": "5",
            "PARTYHELP_DASK_ADDRESS": None,
        }
    )
    env = {
        "PARTYHELP_SETTINGS_VARIABLE": name,
        "PARTYHELP_MYSQL_HOST": "from-the-env",
        "PARTYHELP_TASK_RETRIES": " ",
    }  # empty counts as unset: the Variable's applies
    settings = load_settings(env)
    assert (settings.mysql_host, settings.mysql_user, settings.mysql_port) == (
        "from-the-env",
        "u",
        3307,
    )  # the environment wins; the Variable fills the rest
    assert (settings.task_retries, settings.include_pii_hashes, settings.dask_address) == (
        5,
        False,
        None,
    )
    assert settings.settings_variable == name
    assert read_setting("task_retries", env) == 5  # import-time options read it too
    assert load_settings(VALID).mysql_port == 3306  # no Variable named: none read


def test_a_missing_or_wrong_settings_variable_is_refused_naming_it(
    settings_variable: Callable[[Any], str],
) -> None:
    with pytest.raises(
        ConfigError,
        match=r"^PARTYHELP_SETTINGS_VARIABLE=partyhelp_no_such_"
        r"variable names no Prefect Variable: write it with python -m "
        r"scripts.setup --settings-variable partyhelp_no_such_variable",
    ):
        load_settings({"PARTYHELP_SETTINGS_VARIABLE": "partyhelp_no_such_variable"})
    with pytest.raises(
        ConfigError,
        match=r"^PARTYHELP_SETTINGS_VARIABLE='Bad Name' is not a "
        r"Prefect Variable name",
    ):
        load_settings({"PARTYHELP_SETTINGS_VARIABLE": "Bad Name"})
    name = settings_variable({**VALID, "PARTYHELP_MYSQL_PASSWORD": "pw", "PARTYHELP_NOPE": "1"})
    with pytest.raises(ConfigError) as refused:
        load_settings({"PARTYHELP_SETTINGS_VARIABLE": name})
    assert str(refused.value) == (
        f"Prefect Variable {name!r}: PARTYHELP_MYSQL_PASSWORD is a secret: keep it in a "
        "Secret block named by PARTYHELP_MYSQL_PASSWORD_BLOCK, never in a Variable; "
        "PARTYHELP_NOPE is not a setting it may hold (see README, Configuration)"
    )
    assert "pw" not in str(refused.value).replace("PASSWORD", "")
    name = settings_variable(["not", "an", "object"])
    with pytest.raises(ConfigError, match=r"must hold a JSON object of PARTYHELP_\* settings"):
        load_settings({"PARTYHELP_SETTINGS_VARIABLE": name})


def test_a_run_whose_settings_variable_lacks_a_required_setting_stops_naming_it(
    settings_variable: Callable[[Any], str],
) -> None:
    """The command, as a deployment's job runs it: only the Variable's name in its
    environment. Exit 2 before any flow run, naming the missing setting and the Variable."""
    name = settings_variable({k: v for k, v in VALID.items() if k != "PARTYHELP_MYSQL_HOST"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARTYHELP_")}
    result = subprocess.run(
        [sys.executable, "-m", "flows.partyhelp_sync"],
        cwd=ROOT,
        env={**env, "PARTYHELP_SETTINGS_VARIABLE": name},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith(
            "PARTYHELP_MYSQL_HOST is not set; it is required (see README, Configuration) "
            f"(settings of the environment and of Prefect Variable {name!r})"
        )
    ), result.stderr
    assert "Traceback" not in result.stderr and "Beginning flow run" not in result.stderr


def test_the_deploy_check_names_each_problem_of_the_variable(
    settings_variable: Callable[[Any], str],
) -> None:
    """prefect.yaml's deploy step (tests/scenarios/test_deployment.py runs it within
    `prefect deploy`)."""
    from partyhelp_pipeline.settings import check_deployment_settings

    name = settings_variable(
        {
            **VALID,
            "PARTYHELP_PII_SALT_BLOCK": "partyhelp-no-such-salt",
            "PARTYHELP_FLOW_TIMEOUT_SECONDS": "15200",
        }
    )
    with pytest.raises(ConfigError) as refused:
        check_deployment_settings(name, job_timeout_seconds=15300)
    assert str(refused.value) == (
        f"Prefect Variable {name!r}: PARTYHELP_PII_SALT_BLOCK names no secret block; "
        "PARTYHELP_MYSQL_PASSWORD_BLOCK is not set: a deployment takes the MySQL password "
        "from a Secret block only; the job timeout, 15300 s, must exceed "
        "PARTYHELP_FLOW_TIMEOUT_SECONDS=15200 by 300 s or more: raise `timeout` in "
        f"prefect.yaml; fix it with python -m scripts.setup --settings-variable {name} "
        "(docs/OPERATIONS.md, Deploy)"
    )
    with pytest.raises(ConfigError, match=r"names no Prefect Variable"):
        check_deployment_settings("partyhelp_no_such_variable")
