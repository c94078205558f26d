"""Where the settings come from, below the secrets ``load_settings`` is given: the environment
(or the mapping ``load_settings`` is given instead), then the Prefect Variable it names.

A deployment's environment names a Prefect Variable (PARTYHELP_SETTINGS_VARIABLE), a JSON
object of PARTYHELP_* names and values, written by `python -m scripts.setup
--settings-variable NAME`. Precedence: a setting set (not empty) in the process's own
environment wins; the Variable fills every setting the environment leaves unset; then the
declared default. So the Variable is the production source, and a per-run job variable or
a worker's environment can still override one setting, visibly. Secrets never go in it:
they stay in Secret blocks, which the Variable names.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource

from partyhelp_pipeline.settings.declaration import SettingsDeclaration
from partyhelp_pipeline.settings.rules import (
    ConfigError,
    is_secret,
    validate_variable_name,
    variable_of,
)

SETTINGS_VARIABLE = "PARTYHELP_SETTINGS_VARIABLE"
SETUP_HINT = "python -m scripts.setup --settings-variable {name} (docs/OPERATIONS.md, Deploy)"

# The mapping read instead of os.environ while ``load_settings(env)`` or ``read_setting``
# builds a model (tests pass dicts): a BaseSettings source cannot be handed one per call.
_ENVIRONMENT: ContextVar[Mapping[str, str] | None] = ContextVar("environment", default=None)


@contextmanager
def reading(env: Mapping[str, str] | None) -> Iterator[Mapping[str, str]]:
    """While it lasts, the sources read ``env`` (``os.environ`` when None); yields it."""
    environment = os.environ if env is None else env
    token = _ENVIRONMENT.set(environment)
    try:
        yield environment
    finally:
        _ENVIRONMENT.reset(token)


def environment_read() -> Mapping[str, str]:
    """The mapping the sources read now: ``reading``'s, else ``os.environ``."""
    environment = _ENVIRONMENT.get()
    return os.environ if environment is None else environment


class EnvironmentSource(EnvSettingsSource):
    """The declared variables of ``environment_read()``: secrets as given, other values
    stripped, so that a blank one is empty and (``env_ignore_empty``) counts as unset."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        secrets = {variable_of(d) for d in self.settings_cls.model_fields.values() if is_secret(d)}
        values = {
            name: value if name in secrets else value.strip()
            for name, value in environment_read().items()
        }
        return {name: value for name, value in values.items() if value or not self.env_ignore_empty}


class SettingsVariableSource(PydanticBaseSettingsSource):
    """The settings held by the Prefect Variable that ``PARTYHELP_SETTINGS_VARIABLE`` names
    in ``environment_read()``, if it names one; read once per process (and API)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, "", False  # __call__ reads the Variable once for every field

    def __call__(self) -> dict[str, Any]:
        name = environment_read().get(SETTINGS_VARIABLE, "").strip()
        if not name:
            return {}
        validate_variable_name(name)
        from prefect.settings import PREFECT_API_URL

        stored = _settings_variable_once(name, str(PREFECT_API_URL.value() or ""))
        declared = {variable_of(d) for d in self.settings_cls.model_fields.values()}
        return {variable: value for variable, value in stored.items() if variable in declared}


def sources(
    settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource
) -> tuple[PydanticBaseSettingsSource, ...]:
    """The sources of a settings model, highest first (its defaults come last)."""
    return (init_settings, EnvironmentSource(settings_cls), SettingsVariableSource(settings_cls))


# ------------------------------------------------ the settings Variable of a deployment


def variable_settings() -> list[str]:
    """The variables a settings Variable may hold: every declared ``PARTYHELP_*`` setting
    but the secrets and ``PARTYHELP_SETTINGS_VARIABLE`` itself, in declaration order."""
    return [
        variable_of(d)
        for d in SettingsDeclaration.model_fields.values()
        if variable_of(d).startswith("PARTYHELP_")
        and not is_secret(d)
        and variable_of(d) != SETTINGS_VARIABLE
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
            f"not {type(value).__name__}: rewrite it with " + SETUP_HINT.format(name=name)
        )
    allowed = set(variable_settings())
    secrets = {variable_of(d) for d in SettingsDeclaration.model_fields.values() if is_secret(d)}
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
            "with " + SETUP_HINT.format(name=name)
        )
    return settings_in_variable(name, stored.value)


@cache
def _settings_variable_once(name: str, api_url: str) -> dict[str, str]:
    """A process reads the Variable once (per API), so that a run sees one set of settings,
    even if the Variable is edited while it runs."""
    return read_settings_variable(name)
