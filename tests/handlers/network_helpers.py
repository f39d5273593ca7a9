"""Helpers for the social-graph tests: profiles and counts, lists, follows, bare user rows."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp.test_utils import TestClient

from config import Settings
from tests.conftest import Account
from tests.handlers.conversation_helpers import ok, rest
from tests.handlers.social_helpers import sql

Client = TestClient[Any, Any]


async def profile(client: Client, viewer: Account, user: Account) -> dict[str, Any]:
    return dict(await ok(await client.get(f"/v1/users/{user.id}", headers=viewer.headers)))


async def counts(client: Client, user: Account) -> tuple[int, int, int]:
    """(followers, following, friends) from the user's own profile."""
    me = await ok(await client.get("/v1/users/me", headers=user.headers))
    return me["follower_count"], me["following_count"], me["friend_count"]


async def ids(client: Client, account: Account, name: str, **payload: Any) -> list[str]:
    page = await ok(await rest(client, account, name, payload))
    return [u["id"] for u in page["users"]]


async def make_private(client: Client, account: Account, private: bool = True) -> dict[str, Any]:
    resp = await client.patch("/v1/users/me", json={"is_private": private}, headers=account.headers)
    return dict(await ok(resp))


async def follow(client: Client, a: Account, b: Account) -> str:
    return str((await ok(await rest(client, a, "user.follow", {"user_id": b.id})))["status"])


async def fake_users(settings: Settings, n: int) -> list[uuid.UUID]:
    """n bare user rows made straight in the database (for limits that need many users)."""
    rows = await sql(settings, """INSERT INTO users (username, email, display_name)
        SELECT 'f' || substr(md5(random()::text), 1, 20), NULL, 'fake' FROM generate_series(1, $1)
        RETURNING id""", n)
    return [r["id"] for r in rows]
