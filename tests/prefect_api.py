"""The Prefect API as a client of the tests calls it by hand (raw HTTP, the UI in a browser):
with the basic authentication the Prefect client itself sends, when the server asks for it
(``PREFECT_API_AUTH_STRING``: CI runs the suite against an authenticated server)."""

from __future__ import annotations

import os

import httpx


def auth_string() -> str | None:
    """The clients' ``user:password``, or None against an open server."""
    from prefect.settings import PREFECT_API_AUTH_STRING

    value = PREFECT_API_AUTH_STRING.value() or os.environ.get("PREFECT_API_AUTH_STRING")
    return value or None


def api_auth() -> httpx.BasicAuth | None:
    """The ``auth`` of a raw request to the Prefect API: what the Prefect client sends."""
    text = auth_string()
    if text is None:
        return None
    user, _, password = text.partition(":")
    return httpx.BasicAuth(user, password)
