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
