"""Every setting of the sync, declared once: its variable, type, default and meaning.

The same variables work in a shell, a container and a Prefect deployment's job variables.
``SettingsDeclaration`` (``declaration.py``) is the one declaration; the README's
Configuration table (``python -m scripts.generate_docs``), ``prefect.yaml``'s list and the
messages that name a bad value all derive from it, and
``tests/partyhelp_pipeline/settings/test_docs.py`` checks them against it.

``Settings`` (``loading.py``) is that declaration as a pydantic-settings ``BaseSettings``:
pydantic-settings reads each field's variable (its ``validation_alias``) and merges the
sources, highest first: the secrets ``load_settings`` is given (read by the flow from Prefect
``Secret`` blocks), the environment, the Prefect Variable that ``PARTYHELP_SETTINGS_VARIABLE``
names (``sources.py``), then the declared defaults. Its environment source reads the mapping
``load_settings(env)`` is given instead of ``os.environ`` when there is one (tests pass
dicts), and strips every value but a secret's; ``env_ignore_empty`` makes an empty variable
count as unset.

Rules: every bad or missing value is reported at once, in one ``ConfigError`` that names each
variable (in declaration order, joined by ``"; "``). Secrets are held as ``SecretStr``, so
they never print in a repr, a log line or an exception. Options Prefect fixes at import time
(task retries, the task runner) are read one by one with ``read_setting``, through the same
declaration, sources and messages. ``deploy.py`` is the check ``prefect deploy`` runs on a
deployment's Variable; ``docs.py`` lists the settings for the README and ``check``.

Variables read only by the scripts around the sync are not settings of the sync and are
documented where they are read: the local stack's ``PARTYHELP_STACK_HOME``,
``PARTYHELP_STACK_DATA``, ``PARTYHELP_PYTHON``, ``PARTYHELP_*_PORT``,
``PARTYHELP_START_TIMEOUT``, ``PARTYHELP_STOP_STACK`` (``scripts/stack.sh``); the demo's
``PARTYHELP_TARGET``, ``PARTYHELP_DEMO_*``; the benchmarks' ``PARTYHELP_BENCH_*``; the
tests' ``PARTYHELP_TEST_*``.
"""

from partyhelp_pipeline.settings.declaration import MySQLSettings, SettingsDeclaration
from partyhelp_pipeline.settings.deploy import (
    JOB_TIMEOUT_MARGIN_SECONDS,
    check_deployment_settings,
)
from partyhelp_pipeline.settings.docs import DeclaredSetting, declared_settings, settings_table
from partyhelp_pipeline.settings.loading import (
    Settings,
    import_time_setting,
    load_settings,
    read_setting,
)
from partyhelp_pipeline.settings.rules import (
    BIGQUERY_MAX_LOAD_URIS,
    EMULATOR_VARIABLES,
    LOCAL_PROJECT,
    ConfigError,
    Driver,
    DriverChoice,
    SslMode,
    TaskRunnerName,
    c_driver_imports,
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
from partyhelp_pipeline.settings.sources import (
    SETTINGS_VARIABLE,
    read_settings_variable,
    settings_in_variable,
    variable_settings,
)

__all__ = [
    "BIGQUERY_MAX_LOAD_URIS",
    "EMULATOR_VARIABLES",
    "JOB_TIMEOUT_MARGIN_SECONDS",
    "LOCAL_PROJECT",
    "SETTINGS_VARIABLE",
    "ConfigError",
    "DeclaredSetting",
    "Driver",
    "DriverChoice",
    "MySQLSettings",
    "Settings",
    "SettingsDeclaration",
    "SslMode",
    "TaskRunnerName",
    "c_driver_imports",
    "check_deployment_settings",
    "chosen_driver",
    "declared_settings",
    "import_time_setting",
    "load_settings",
    "quote_table_ref",
    "read_setting",
    "read_settings_variable",
    "settings_in_variable",
    "settings_table",
    "validate_block_name",
    "validate_bucket",
    "validate_dataset",
    "validate_prefix",
    "validate_project",
    "validate_table",
    "validate_timezone",
    "validate_variable_name",
    "variable_settings",
]
