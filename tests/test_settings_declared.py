"""Every list of the settings derives from their one declaration, ``Settings``, or matches it.

The README's Configuration table is generated from it; ``prefect.yaml``'s production
environment names every setting a deployment can pass (all but the secrets, which come from
``Secret`` blocks, and the emulator addresses, which are for local runs), and nothing else.
"""

from __future__ import annotations

from typing import Any

import yaml

from partyhelp_pipeline.settings import Settings, declared_settings, settings_table
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
        assert setting.variable.startswith("PARTYHELP_") or \
            setting.variable.endswith("_EMULATOR_HOST"), setting.variable


def _production_env() -> dict[str, Any]:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    env: dict[str, Any] = config["definitions"]["production_env"]
    return env


def test_prefect_yaml_lists_every_setting_a_deployment_passes_and_no_other() -> None:
    passed = [name for name in _production_env() if not name.startswith("PREFECT_")]
    deployable = [s.variable for s in declared_settings()
                  if not s.secret and s.variable.startswith("PARTYHELP_")]
    assert passed == deployable  # in declaration order, so the two read alike


def test_no_secret_is_in_prefect_yaml() -> None:
    secrets = {s.variable for s in declared_settings() if s.secret}
    assert secrets == {"PARTYHELP_MYSQL_PASSWORD", "PARTYHELP_PII_SALT"}
    assert not secrets & set(_production_env())
    for setting in declared_settings():
        if setting.secret:  # each secret has a setting naming the Secret block that holds it
            assert f"{setting.variable}_BLOCK" in _production_env()
