"""tasks/options.py: a run resolves its settings once and hands them down."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

import partyhelp_pipeline.settings as settings_module
from tests.conftest import create_bucket, sync_environment
from tests.faultkit import env_vars, sync_on

SYNC_DATE = dt.date(2026, 11, 25)


@pytest.fixture()
def builds(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every full settings build of this process, counted by a spy around the real
    ``load_settings`` (it still does the work)."""
    calls: list[str] = []
    real = settings_module.load_settings

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append("build")
        return real(*args, **kwargs)

    import tasks.options

    monkeypatch.setattr(tasks.options, "load_settings", counted)
    yield calls


def test_a_five_table_run_builds_its_settings_once(source_db: dict, builds: list[str]) -> None:
    token = secrets.token_hex(4)
    bucket, dataset = f"ph-opt-{token}", f"ph_opt_{token}"
    create_bucket(bucket)
    env = sync_environment(source_db["database"], source_db["user"], bucket, dataset)
    with env_vars(env):
        state = sync_on(SYNC_DATE)
    assert state.is_completed(), state.message
    assert len(builds) == 1, f"settings built {len(builds)} times in one run"


@pytest.fixture()
def password_block(stack: None) -> Iterator[tuple[str, str]]:
    """A Prefect ``Secret`` block on the session's server: (its name, its value)."""
    from prefect.blocks.system import Secret

    name, value = f"ph-test-password-{secrets.token_hex(4)}", f"pw-{secrets.token_hex(8)}"
    Secret(value=value).save(name)
    yield name, value
    Secret.delete(name)


def test_the_secret_block_type_chooses_which_block_is_read(
    password_block: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """``secret`` reads a Prefect Secret block; ``gcp-secret`` a prefect-gcp GcpSecret of that
    name (the value in GCP Secret Manager, not reachable here): where there is none, the
    command stops in one line naming the block and the setting, before any run."""
    from flows.partyhelp_sync import main
    from tasks.options import resolve_settings

    name, value = password_block
    env = sync_environment("ph_any", "reader", "ph-any", "ph_any")
    env["PARTYHELP_MYSQL_PASSWORD_BLOCK"] = name
    with env_vars({**env, "PARTYHELP_SECRET_BLOCK_TYPE": "secret"}):
        assert resolve_settings().mysql_password.get_secret_value() == value
    with env_vars({**env, "PARTYHELP_SECRET_BLOCK_TYPE": "gcp-secret"}):
        with pytest.raises(ValueError, match=f"no GcpSecret block named '{name}'"):
            resolve_settings()
        assert main(["--tables", "ph_venues"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"partyhelp sync: settings: no GcpSecret block named '{name}' "
        "(PARTYHELP_SECRET_BLOCK_TYPE=gcp-secret): create it with prefect-gcp, naming the "
        "Secret Manager secret"
    ]
    assert value not in "".join(err)
