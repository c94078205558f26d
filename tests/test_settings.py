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

from tasks.settings import ConfigError, env_seconds, load_settings
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
    ("PARTYHELP_MYSQL_DRIVER", "odbc", "must be mysqlclient or pymysql"),
])
def test_a_bad_setting_is_refused_naming_the_variable(variable: str, value: str,
                                                      why: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{variable}=.*{why}"):
        load_settings({**VALID, variable: value})


def test_the_reporting_time_zone_defaults_to_melbourne_and_takes_any_iana_name() -> None:
    assert load_settings(VALID).timezone == "Australia/Melbourne"
    assert load_settings({**VALID, "PARTYHELP_TIMEZONE": "Australia/Perth"}).timezone == \
        "Australia/Perth"


@pytest.mark.parametrize(("raw", "allow_zero", "expected"), [
    ("", False, None), ("2.5", False, 2.5), ("0", True, 0.0), ("0", False, ConfigError),
    ("-1", True, ConfigError), ("nan", True, ConfigError), ("inf", False, ConfigError),
    ("ten", False, ConfigError),
])
def test_seconds_settings(raw: str, allow_zero: bool, expected: object) -> None:
    env = {"PARTYHELP_X_SECONDS": raw}
    if expected is ConfigError:
        with pytest.raises(ConfigError, match=r"^PARTYHELP_X_SECONDS must be a number"):
            env_seconds("PARTYHELP_X_SECONDS", None, allow_zero=allow_zero, env=env)
    else:
        assert env_seconds("PARTYHELP_X_SECONDS", None, allow_zero=allow_zero,
                           env=env) == expected


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("PARTYHELP_MAX_WORKERS", "eight", "PARTYHELP_MAX_WORKERS='eight' is not an integer"),
    ("PARTYHELP_TASK_RETRIES", "-1", "PARTYHELP_TASK_RETRIES=-1 must be at least 0"),
    ("PARTYHELP_TASK_RUNNER", "celery",
     "PARTYHELP_TASK_RUNNER='celery' must be one of threads, dask"),
])
def test_a_bad_setting_read_at_import_stops_the_command_naming_it(variable: str, value: str,
                                                                   message: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARTYHELP_")}
    result = subprocess.run([sys.executable, "-m", "flows.partyhelp_sync", "--date",
                             "2026-11-25"], cwd=ROOT, env={**env, **VALID, variable: value},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert f"ConfigError: {message}" in result.stderr, result.stderr[-2000:]
