"""The Prefect control plane with Prefect's own basic authentication on (issue 23, first
part): a server that ``scripts/stack.sh`` starts with ``PARTYHELP_PREFECT_AUTH_STRING`` set
(``PREFECT_SERVER_API_AUTH_STRING`` on the server) refuses every request that lacks the
string (the MySQL password's Secret block included) and answers the clients that carry it
(``PREFECT_API_AUTH_STRING``, which ``stack.sh env`` exports), the project's own reading of
the password included. The string is on no command line.

A server of this test's own (tests/alerting.py), so that the session's stays as it is.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.alerting import private_prefect_server, using_prefect_server
from tests.conftest import sync_environment
from tests.emulators import STACK_SH, env_vars

pytestmark = pytest.mark.services  # starts a Prefect server of its own

BLOCK = "partyhelp-mysql-password"


@pytest.fixture(scope="module")
def guarded(stack: None) -> Iterator[dict[str, Any]]:
    """An authenticated server, the Secret block saved on it by an authenticated client."""
    from prefect.blocks.system import Secret
    from prefect.settings import PREFECT_API_AUTH_STRING, temporary_settings

    auth = f"admin:{secrets.token_hex(12)}"
    password = f"mysql-{secrets.token_hex(12)}"
    with private_prefect_server(PARTYHELP_PREFECT_AUTH_STRING=auth) as url:
        client_env = {"PREFECT_API_AUTH_STRING": auth}
        with (
            using_prefect_server(url),
            env_vars(client_env),
            temporary_settings({PREFECT_API_AUTH_STRING: auth}),
        ):
            Secret(value=password).save(BLOCK, overwrite=True)
            yield {"url": url, "auth": auth, "password": password}


def filter_blocks(url: str, auth: tuple[str, str] | None) -> httpx.Response:
    """The request that read the password off an open server: every block, secrets shown."""
    body = {"include_secrets": True}
    return httpx.post(f"{url}/block_documents/filter", json=body, auth=auth, timeout=10)


def test_no_secret_is_read_without_the_string(guarded: dict[str, Any]) -> None:
    user, _ = guarded["auth"].split(":", 1)
    for auth in (None, (user, "wrong-" + secrets.token_hex(4))):
        refused = filter_blocks(guarded["url"], auth)
        assert refused.status_code == 401, refused.text
        assert guarded["password"] not in refused.text
    with_string = filter_blocks(guarded["url"], (user, guarded["auth"].split(":", 1)[1]))
    assert with_string.status_code == 200
    assert guarded["password"] in with_string.text  # the string is all that guards it


def test_runs_deployments_and_block_edits_are_refused_too(guarded: dict[str, Any]) -> None:
    url = guarded["url"]
    for method, path, body in (
        ("POST", "/flow_runs/filter", {}),
        ("POST", "/deployments/filter", {}),
        ("POST", "/block_types/filter", {}),
        ("DELETE", f"/block_documents/{secrets.token_hex(16)}", None),
    ):
        response = httpx.request(method, f"{url}{path}", json=body, timeout=10)
        assert response.status_code == 401, (method, path, response.text)
    assert httpx.get(f"{url}/health", timeout=10).status_code == 200  # for health checks


def test_the_sync_reads_its_password_through_an_authenticated_client(
    guarded: dict[str, Any],
) -> None:
    from tasks.options import runtime_settings

    env = sync_environment("ph_any", "reader", "ph-any", "ph_any")
    del env["PARTYHELP_MYSQL_PASSWORD"]
    with env_vars({**env, "PARTYHELP_MYSQL_PASSWORD_BLOCK": BLOCK}):
        settings = runtime_settings()  # outside a flow run: built now, the block read now
    assert settings.mysql_password.get_secret_value() == guarded["password"]


def test_stack_env_exports_the_clients_string_and_no_command_line_holds_it(
    guarded: dict[str, Any],
) -> None:
    env = {**os.environ, "PARTYHELP_PREFECT_AUTH_STRING": guarded["auth"]}
    exported = subprocess.run(
        [str(STACK_SH), "env"], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert f"export PREFECT_API_AUTH_STRING={guarded['auth']}" in exported.splitlines()
    without = {k: v for k, v in os.environ.items() if k != "PARTYHELP_PREFECT_AUTH_STRING"}
    plain = subprocess.run([str(STACK_SH), "env"], env=without, capture_output=True, text=True)
    assert "PREFECT_API_AUTH_STRING" not in plain.stdout
    command_lines = running_command_lines()
    assert any("prefect server start" in line for line in command_lines)
    assert not [line for line in command_lines if guarded["auth"] in line]


def running_command_lines() -> list[str]:
    """The command line of every process of the machine (one that ends meanwhile is left out)."""
    lines = []
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            lines.append(path.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return lines
