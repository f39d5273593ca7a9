"""Helpers for the story tests: uploads, a graph made in SQL, a clock the test moves."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from config import Settings
from server.resources import SERVICES
from tests.conftest import Account
from tests.handlers.conversation_helpers import ok, rest
from tests.handlers.social_helpers import sql
from tests.media_files import jpeg

Client = TestClient[Any, Any]


@dataclass
class Clock:
    """A clock the test moves; installed as the app's Services.clock."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def install_clock(client: Client) -> Clock:
    clock = Clock(datetime.now(UTC))
    client.app[SERVICES].clock = clock
    return clock


async def follow(settings: Settings, follower: Account, followee: Account) -> None:
    # With the profile counters, as the networks commands keep them (a block undoes both).
    await sql(settings, """WITH f AS (INSERT INTO follows (follower_id, followee_id)
                                      VALUES ($1, $2) RETURNING 1)
                           UPDATE users SET
                               follower_count = follower_count + (id = $2)::int,
                               following_count = following_count + (id = $1)::int
                           WHERE id IN ($1, $2)""", follower.id, followee.id)


async def befriend(settings: Settings, a: Account, b: Account) -> None:
    await sql(settings, """WITH f AS (INSERT INTO friendships (user_id, friend_id)
                                      VALUES ($1, $2), ($2, $1) RETURNING 1)
                           UPDATE users SET friend_count = friend_count + 1
                           WHERE id IN ($1, $2)""", a.id, b.id)


async def close_friend(settings: Settings, owner: Account, friend: Account) -> None:
    await sql(settings, "INSERT INTO close_friends (user_id, friend_id) VALUES ($1, $2)",
              owner.id, friend.id)


async def upload(client: Client, account: Account, data: bytes | None = None) -> str:
    form = aiohttp.FormData()
    form.add_field("file", data or jpeg(64, 48), filename="s.jpg",
                   content_type="application/octet-stream")
    resp = await client.post("/v1/media", data=form, headers=account.headers)
    assert resp.status == 202, await resp.text()
    return str((await resp.json())["id"])


async def settled(client: Client, account: Account, media_id: str) -> dict[str, Any]:
    for _ in range(600):
        body: dict[str, Any] = await (await client.get(f"/v1/media/{media_id}",
                                                      headers=account.headers)).json()
        if body["status"] in ("ready", "failed"):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError("media not processed in time")


async def post_story(client: Client, account: Account, **fields: Any) -> dict[str, Any]:
    """story.create with a fresh upload unless media_id is given."""
    payload = {"media_id": fields.pop("media_id", None) or await upload(client, account),
               **fields}
    return dict(await ok(await rest(client, account, "story.create", payload), 201))


async def tray(client: Client, account: Account, **page: Any) -> dict[str, Any]:
    return dict(await ok(await rest(client, account, "story.list_feed", page)))


def tray_ids(page: dict[str, Any]) -> set[str]:
    return {s["id"] for group in page["authors"] for s in group["stories"]}
