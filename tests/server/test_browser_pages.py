"""Pages the server serves, driven in headless Chromium: what a person sees and clicks."""

from __future__ import annotations

import re
import uuid
from typing import Any

from aiohttp.test_utils import TestClient
from playwright.async_api import Page, expect

from config import Settings
from jobs.unsubscribe import PATH, link
from tests.browser_helpers import Screenshots
from tests.conftest import Account

SUBSCRIPTIONS = "/v1/outreach/subscriptions"


async def subscriptions(client: TestClient[Any, Any], account: Account) -> dict[str, bool]:
    resp = await client.get(SUBSCRIPTIONS, headers=account.headers)
    assert resp.status == 200, await resp.text()
    data: dict[str, bool] = await resp.json()
    return data


async def test_unsubscribe_link_confirms_in_the_browser_and_the_button_opts_out(
    client: TestClient[Any, Any], account: Account, settings: Settings, page: Page,
    screenshot: Screenshots,
) -> None:
    url = link(str(client.make_url("/")), settings.resolved_unsubscribe_secret(),
               uuid.UUID(account.id), "email")

    response = await page.goto(url)
    assert response is not None and response.status == 200
    await expect(page).to_have_title("Unsubscribe from HotSpot emails")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Unsubscribe from HotSpot emails")
    await expect(page.get_by_text("Account and security messages still reach you")).to_be_visible()
    await screenshot(page, "confirm")
    # Opening the link (as a mail scanner would) changes nothing.
    assert (await subscriptions(client, account))["email"] is True

    async with page.expect_navigation():
        await page.get_by_role("button", name="Unsubscribe").click()
    assert re.search(rf"{re.escape(PATH)}\?token=", page.url)
    await expect(page.get_by_role("heading", level=1)).to_have_text("Unsubscribed")
    await expect(page.get_by_text("You will get no more HotSpot campaign emails.")).to_be_visible()
    await screenshot(page, "unsubscribed")

    assert await subscriptions(client, account) == {"email": False, "sms": True, "push": True}
    assert [p.name for p in screenshot.taken] == ["01-confirm.png", "02-unsubscribed.png"]
    assert all(p.stat().st_size > 1000 for p in screenshot.taken)


async def test_a_tampered_unsubscribe_link_shows_the_invalid_link_page(
    client: TestClient[Any, Any], page: Page, screenshot: Screenshots,
) -> None:
    response = await page.goto(str(client.make_url(PATH)) + "?token=not-a-token")
    assert response is not None and response.status == 400
    await expect(page.get_by_role("heading", level=1)).to_have_text("Invalid link")
    await expect(page.get_by_role("button")).to_have_count(0)
    await screenshot(page, "invalid")
