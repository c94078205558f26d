"""A real browser for the tests where a person would use one: Debian's chromium
(``/usr/bin/chromium``, installed by ``scripts/stack.sh install --with-browser``) driven by
Playwright's Python package. Nothing here downloads a browser: no ``playwright install``."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package


@contextlib.contextmanager
def chromium_page() -> Iterator[Page]:
    """A page of a headless Debian chromium; the browser is closed afterwards. Without the
    browser the test fails (the test command installs it), saying how to install it."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"no {CHROMIUM}: scripts/stack.sh install --with-browser installs "
            "Debian's chromium (apt-get install chromium); never `playwright install`",
            pytrace=False,
        )
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)  # as the page's own waits, not 5 s: CI runs loaded
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


def log_in_to_prefect(page: Page, ui_url: str) -> None:
    """Give the Prefect UI the clients' auth string when the server asks for one (its login
    page, as a person does); nothing against an open server."""
    from tests.prefect_api import auth_string

    text = auth_string()
    if text is None:
        return
    page.goto(f"{ui_url}/login")
    page.locator('input[type="password"]').fill(text)
    page.get_by_role("button", name="Login").click()
    page.wait_for_url(lambda url: "/login" not in url)
