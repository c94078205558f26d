"""Reading the settings: ``Settings`` is the declaration read by pydantic-settings from its
sources, and every bad or missing value is reported at once, in one ``ConfigError``."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from pydantic import ValidationError, create_model
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from partyhelp_pipeline.settings.declaration import SETTINGS_CONFIG, SettingsDeclaration
from partyhelp_pipeline.settings.rules import ConfigError
from partyhelp_pipeline.settings.sources import SETTINGS_VARIABLE, reading, sources

_REQUIRED = "is not set; it is required (see README, Configuration)"


class FromSources(BaseSettings):
    """A settings model read, highest first, from its arguments (the secrets), the
    environment (or ``load_settings``' mapping), the settings Variable; then its defaults."""

    model_config = SETTINGS_CONFIG

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # pydantic-settings' own environment source (a copy of os.environ), dotenv and
        # secrets-directory sources are dropped: none of their values reaches the model.
        return sources(settings_cls, init_settings)


# The declaration and its sources join here: the Variable source checks a Variable against
# the whole declaration, so the declaration cannot name its sources itself.
class Settings(SettingsDeclaration, FromSources):
    """Everything the sync reads from its environment, as ``SettingsDeclaration`` declares it."""


def _config_error(error: ValidationError) -> ConfigError:
    """One ``ConfigError`` naming every bad variable of ``error``, in declaration order."""
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
    return ConfigError("; ".join(problems))


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
    secrets: dict[str, Any] = {}
    if mysql_password is not None:
        secrets["PARTYHELP_MYSQL_PASSWORD"] = mysql_password
    if pii_salt:
        secrets["PARTYHELP_PII_SALT"] = pii_salt
    with reading(env) as environment:
        try:
            return Settings(**secrets)
        except ValidationError as error:
            refused = _config_error(error)
    variable = environment.get(SETTINGS_VARIABLE, "").strip()
    if variable:
        raise ConfigError(
            f"{refused} (settings of the environment and of Prefect Variable {variable!r})"
        )
    raise refused


@cache
def _one_setting_model(name: str) -> type[FromSources]:
    """A settings model of the one declared setting ``name``, read from the same sources."""
    declared = SettingsDeclaration.model_fields[name]
    definition: dict[str, Any] = {name: (declared.annotation, declared)}
    return create_model(f"Setting_{name}", __base__=FromSources, **definition)


def read_setting(name: str, env: Mapping[str, str] | None = None) -> Any:
    """One setting, by its field name (e.g. ``"task_retries"``), validated as
    ``load_settings`` validates it; ``os.environ`` when ``env`` is None.

    For options Prefect fixes at import time (a task's retries, the flow's task runner), so
    that a bad one stops the command naming its variable. Rules that join several settings
    (the project with emulators, the salt with PII hashes) apply in ``load_settings`` only.
    """
    if name not in SettingsDeclaration.model_fields:
        raise KeyError(f"{name!r} is not a declared setting")
    with reading(env):
        try:
            return getattr(_one_setting_model(name)(), name)
        except ValidationError as error:
            raise _config_error(error) from None


def import_time_setting(name: str) -> Any:
    """``read_setting`` for an option fixed when a module is imported (a task's retries, the
    flow's task runner and timeout): a bad value gives the declared default here, so that
    importing the flow never fails with a traceback. ``load_settings``, which the command
    and the flow run before anything else, reports it in its one line."""
    try:
        return read_setting(name)
    except ConfigError:
        return SettingsDeclaration.model_fields[name].default
