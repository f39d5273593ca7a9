"""Helpers the social-feature tests share: poll until something shows, notifications, raw SQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from config import Settings
from tests.conftest import Account
from tests.handlers.conversation_helpers import ok, rest

Client = TestClient[Any, Any]


async def until(check: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
    """Poll until check() answers something truthy; that answer."""
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


def notes_of(client: Client, account: Account) -> Callable[[], Awaitable[list[dict[str, Any]]]]:
    """A check for until(): the account's first page of notifications."""
    async def check() -> list[dict[str, Any]]:
        page = await ok(await rest(client, account, "notification.list"))
        return list(page["notifications"])
    return check


async def sql(settings: Settings, query: str, *args: Any) -> Any:
    """Run one statement on the test database; its rows."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()
