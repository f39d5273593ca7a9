"""The consent page in headless Chromium: log in, untick a scope, approve, land on the app."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiohttp.test_utils import TestClient
from playwright.async_api import Page, Route, expect

from tests.browser_helpers import Screenshots
from tests.conftest import Account
from tests.handlers.oauth_helpers import REDIRECT
from tests.server.oauth_flow_helpers import authorize_url, exchange, register


async def test_consent_page_in_a_browser(
    client: TestClient[Any, Any], account: Account, page: Page, screenshot: Screenshots,
) -> None:
    app = await register(client)
    auth = authorize_url(client, app)
    landed: list[str] = []

    async def callback(route: Route) -> None:
        # The app's redirect URI is not served here: record where the browser landed.
        landed.append(route.request.url)
        await route.fulfill(status=200, body="signed in", content_type="text/plain")

    await page.route(REDIRECT + "*", callback)
    await page.goto(auth.url)
    await expect(page.get_by_role("heading", level=1)).to_have_text("Sign in with HotSpot")
    await page.get_by_label("Username or email").fill(account.username)
    await page.get_by_label("Password").fill(account.password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Allow this app?")
    await screenshot(page, "consent")
    await page.get_by_label("write:messages", exact=False).uncheck()
    await page.get_by_role("button", name="Allow").click()
    await expect(page.get_by_text("signed in")).to_be_visible()
    params = {k: v[0] for k, v in parse_qs(urlsplit(landed[-1]).query).items()}
    assert params["state"] == auth.state
    resp = await exchange(client, app, params["code"], auth.verifier)
    assert resp.status == 200, await resp.text()
    assert "write:messages" not in (await resp.json())["scope"].split()
