"""The settings as the README's Configuration table, ``prefect.yaml`` and ``check`` list
them: generated from the one declaration (``python -m scripts.generate_docs``)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr
from pydantic.fields import FieldInfo

from partyhelp_pipeline.settings.declaration import SettingsDeclaration
from partyhelp_pipeline.settings.rules import is_secret, variable_of


@dataclass(frozen=True)
class DeclaredSetting:
    """One setting as the README and ``prefect.yaml`` list it."""

    name: str  # the field of ``SettingsDeclaration``
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
            variable_of(declared),
            _shown_default(declared),
            declared.description or "",
            is_secret(declared),
        )
        for name, declared in SettingsDeclaration.model_fields.items()
    ]


def settings_table() -> list[tuple[str, str, str]]:
    """(variable, default as shown, meaning) of every setting: the README's table."""
    return [(s.variable, s.default, s.meaning) for s in declared_settings()]
