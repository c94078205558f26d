"""Every list of the settings derives from their one declaration, ``Settings``, or matches it.

The README's Configuration table is generated from it; a ``prefect.yaml`` deployment passes
only declared settings, and its settings Variable may hold every declared setting but the
secrets (which come from ``Secret`` blocks), and nothing else.
"""

from __future__ import annotations

from typing import Any

import yaml

from partyhelp_pipeline.settings import (
    Settings,
    declared_settings,
    settings_in_variable,
    settings_table,
    variable_settings,
)
from scripts.generate_docs import README, SETTINGS_BEGIN, SETTINGS_END, render_settings_table
from tests.conftest import ROOT


def test_the_readme_configuration_table_is_the_generated_one() -> None:
    readme = README.read_text(encoding="utf-8")
    assert readme == render_settings_table(readme), "run python -m scripts.generate_docs"
    table = readme.split(SETTINGS_BEGIN, 1)[1].split(SETTINGS_END, 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [v for v, _, _ in settings_table()]


def test_every_setting_is_declared_with_its_variable_and_meaning() -> None:
    declared = declared_settings()
    assert [s.name for s in declared] == list(Settings.model_fields)
    variables = [s.variable for s in declared]
    assert len(set(variables)) == len(variables)
    for setting in declared:
        assert setting.meaning, f"{setting.variable} has no meaning"
        assert "|" not in setting.meaning + setting.default  # a cell of the README table
        assert setting.variable.startswith("PARTYHELP_") or setting.variable.endswith(
            "_EMULATOR_HOST"
        ), setting.variable


def _deployment_envs() -> dict[str, dict[str, Any]]:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    return {
        d["name"]: d["work_pool"].get("job_variables", {}).get("env", {})
        for d in config["deployments"]
    }


def test_every_setting_a_deployment_passes_is_declared() -> None:
    """A deployment's env passes only declared settings (and Prefect's own); its runs read
    the rest from the settings Variable, which may hold every declared setting but the
    secrets (and its own name), and no other."""
    declared = {s.variable for s in declared_settings()}
    for name, env in _deployment_envs().items():
        unknown = [v for v in env if not v.startswith("PREFECT_") and v not in declared]
        assert not unknown, f"{name} passes {unknown}, read nowhere"
    assert variable_settings() == [
        s.variable
        for s in declared_settings()
        if not s.secret
        and s.variable.startswith("PARTYHELP_")
        and s.variable != "PARTYHELP_SETTINGS_VARIABLE"
    ]
    every = {v: "x" for v in variable_settings()}
    assert settings_in_variable("v", every) == every  # each one is accepted


def test_no_secret_is_in_prefect_yaml() -> None:
    secrets = {s.variable for s in declared_settings() if s.secret}
    assert secrets == {"PARTYHELP_MYSQL_PASSWORD", "PARTYHELP_PII_SALT"}
    for env in _deployment_envs().values():
        assert not secrets & set(env)
    for setting in declared_settings():
        if setting.secret:  # each secret has a setting naming the Secret block that holds it
            assert f"{setting.variable}_BLOCK" in variable_settings()
            assert f"{setting.variable}_BLOCK" not in secrets
