"""Helpers for the device flow tests: a device polling /oauth/* over real HTTP, and the
person's browser on /oauth/device (its own cookie jar, each hop checked by hand)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.test_utils import TestClient

from tests.conftest import Account
from tests.server.oauth_flow_helpers import App, approve, field, log_in, services

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
USER_CODE = re.compile(r"^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$")


def _auth(app: App, data: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Client authentication as the app's type does it: Basic, or client_id in the form."""
    if app.client_secret is not None:
        return app.basic, data
    return {}, {**data, "client_id": app.client_id}


async def post(client: TestClient[Any, Any], path: str, app: App,
               data: dict[str, str]) -> tuple[int, dict[str, Any], Any]:
    headers, form = _auth(app, data)
    async with aiohttp.ClientSession() as http:
        resp = await http.post(client.make_url(path), data=form, headers=headers)
        return resp.status, await resp.json(), resp.headers


async def start(client: TestClient[Any, Any], app: App, scopes: list[str]) -> dict[str, Any]:
    """A device asks for its codes; the RFC 8628 3.2 response."""
    status, body, headers = await post(client, "/oauth/device_authorization", app,
                                       {"scope": " ".join(scopes)})
    assert status == 200, body
    assert headers["Cache-Control"] == "no-store"
    return body


async def poll(client: TestClient[Any, Any], app: App, device_code: str) -> tuple[int, dict[str, Any]]:
    status, body, _ = await post(client, "/oauth/token", app,
                                 {"grant_type": DEVICE_GRANT, "device_code": device_code})
    return status, body


async def forget_last_poll(client: TestClient[Any, Any]) -> None:
    """As if the device had waited its interval since its last poll."""
    await services(client).db.pool.execute(
        "UPDATE oauth_device_codes SET last_polled_at = last_polled_at - interval '1 hour'")


async def interval_of(client: TestClient[Any, Any], user_code: str) -> int:
    found: int = await services(client).db.pool.fetchval(
        "SELECT interval_s FROM oauth_device_codes WHERE user_code = $1",
        user_code.replace("-", ""))
    return found


def local(client: TestClient[Any, Any], uri: str) -> str:
    """A verification URI (under HOTSPOT_PUBLIC_BASE_URL) on the test server."""
    parts = urlsplit(uri)
    return str(client.make_url(parts.path)) + (f"?{parts.query}" if parts.query else "")


def page_url(client: TestClient[Any, Any], user_code: str) -> str:
    return str(client.make_url("/oauth/device")) + f"?user_code={user_code}"


async def consent_on_page(browser: aiohttp.ClientSession, url: str, account: Account,
                          keep: list[str] | None, deny: bool = False) -> str:
    """Open the device page, sign in, then approve keeping `keep` (or deny); the end page."""
    page = await log_in(browser, url, account)
    assert page.status == 200, await page.text()
    html = await page.text()
    assert "Allow this app?" in html, html
    if deny:
        resp = await browser.post(url, allow_redirects=False, data={
            "csrf_token": field(html, "csrf_token"), "action": "deny"})
    else:
        resp = await approve(browser, url, html, keep or [])
    assert resp.status == 200, await resp.text()
    return await resp.text()


async def enter_code(browser: aiohttp.ClientSession, client: TestClient[Any, Any],
                     typed: str) -> aiohttp.ClientResponse:
    resp = await browser.get(client.make_url("/oauth/device"), params={"user_code": typed},
                             allow_redirects=False)
    await resp.read()
    return resp
