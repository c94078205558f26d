"""The Prefect UI in a real browser: Debian's chromium (``/usr/bin/chromium``, installed by
``scripts/stack.sh install --with-browser``, as ``scripts/test.sh`` runs it) driven by
Playwright's Python package. Nothing here downloads a browser: no ``playwright install``.

- ``retry_in_the_ui`` does what an operator does to retry a failed flow run: its page,
  **Retry** in the run's header, **Retry** in the dialog. tests/scenarios/test_deployment.py's
  ``test_retry_from_the_ui_redoes_only_what_failed`` uses it on a real worker and checks what
  the retry redid (it reuses that test's expensive setup: a real outage, a process worker).
- A Prefect server that ``scripts/stack.sh`` starts on a port other than 4200 serves a UI
  that calls its own API, even when started from a shell whose PREFECT_API_URL names
  another server.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.browser import chromium_page, log_in_to_prefect
from tests.emulators import free_port, stack_sh

pytestmark = pytest.mark.services  # starts services of its own (tests/conftest.py)

if TYPE_CHECKING:
    from playwright.sync_api import Request


def ui_url() -> str:
    """The UI of the session's Prefect server (``PREFECT_API_URL`` without ``/api``)."""
    return os.environ["PREFECT_API_URL"].rstrip("/").removesuffix("/api")


def retry_in_the_ui(flow_run: Any, screenshots: Path) -> dict[str, Any]:
    """Retry a failed flow run from the Prefect UI, as an operator does: open its page, click
    **Retry** in the run's header, confirm the dialog. Screenshots of the dialog and of the
    page after confirming go to ``screenshots``.

    Returns the JSON body the button sent to ``set_state``, which the server accepted.
    """
    from playwright.sync_api import expect

    screenshots.mkdir(parents=True, exist_ok=True)
    with chromium_page() as page:
        log_in_to_prefect(page, ui_url())  # CI's server asks for its auth string
        page.goto(f"{ui_url()}/runs/flow-run/{flow_run.id}")
        header = page.locator("header", has_text=flow_run.name)
        expect(header.get_by_text("Failed", exact=True)).to_be_visible()
        header.get_by_role("button", name="Retry", exact=True).click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text(f"Retry {flow_run.name}?")
        page.screenshot(path=screenshots / "1-retry-dialog.png", animations="disabled")

        def is_set_state(request: Request) -> bool:
            return request.method == "POST" and request.url.endswith(
                f"/api/flow_runs/{flow_run.id}/set_state"
            )

        set_states: list[Request] = []

        def record(request: Request) -> None:
            if is_set_state(request):
                set_states.append(request)

        page.on("request", record)
        with page.expect_request(is_set_state) as sent:
            dialog.get_by_role("button", name="Retry", exact=True).click()
        response = sent.value.response()
        assert response is not None and response.ok, response and response.text()
        assert response.json()["status"] == "ACCEPT", response.text()
        # The UI's success toast (its text appears twice in the page's DOM).
        expect(page.get_by_text("Retrying run", exact=True).first).to_be_visible()
        page.screenshot(path=screenshots / "2-after-retry.png", animations="disabled")
        assert len(set_states) == 1, "the dialog's Retry must send one request"
        body: dict[str, Any] = sent.value.post_data_json
        return body


@contextlib.contextmanager
def stack_sh_prefect_server(stack_home: Path, port: int) -> Iterator[str]:
    """``scripts/stack.sh start-prefect`` on ``port``, in a stack home (database, logs, pid
    files) of its own, started from this environment (PREFECT_API_URL names the session's
    server, as in a shell after ``eval "$(scripts/stack.sh env)"``); stopped afterwards.
    """
    # Open, whatever the session's server is: this is about the UI's port, not its login.
    inherited = {k: v for k, v in os.environ.items() if k != "PARTYHELP_PREFECT_AUTH_STRING"}
    env = {
        **inherited,
        "PARTYHELP_STACK_HOME": str(stack_home),
        "PARTYHELP_PREFECT_PORT": str(port),
        "PARTYHELP_START_TIMEOUT": "120",
    }

    stack_sh("start-prefect", env)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stack_sh("stop-prefect", env)


def test_stack_sh_prefect_ui_calls_its_own_api_on_another_port(tmp_path: Path) -> None:
    """The UI of a server on another port than 4200 calls that server's API and shows its
    data: before scripts/stack.sh set PREFECT_UI_API_URL, it called port 4200 (Prefect's
    default, or the PREFECT_API_URL it inherited) and showed another server's runs."""
    port = free_port()
    assert port != 4200
    with stack_sh_prefect_server(tmp_path / "stack", port) as server:
        settings = httpx.get(f"{server}/ui-settings", timeout=30).json()
        assert settings["api_url"] == f"{server}/api"
        flow = f"ui-port-check-{os.urandom(3).hex()}"  # exists on this server only
        httpx.post(f"{server}/api/flows/", json={"name": flow}, timeout=30).raise_for_status()
        with chromium_page() as page:
            api_hosts: set[str] = set()

            def record(request: Request) -> None:
                if "/api/" in request.url:
                    api_hosts.add(request.url.split("/api/")[0])

            page.on("request", record)
            for path in ("/flows", "/v2/flows"):  # the default UI, and the V2 UI
                page.goto(f"{server}{path}")
                page.get_by_text(flow, exact=True).first.wait_for()
                page.screenshot(path=tmp_path / f"flows{path.replace('/', '-')}.png")
        assert api_hosts == {server}, "the UI called another server's API"
