"""Helpers for the item tests: create items, follow and befriend, SQL peeks, notification polls."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from tests.conftest import Account
from tests.handlers.conversation_helpers import ok, rest
from tests.handlers.social_helpers import until

Client = TestClient[Any, Any]


async def create(client: Client, account: Account, kind: str = "post", body: str | None = "hi",
                 **fields: Any) -> dict[str, Any]:
    """item.create over REST, expecting 201; the item."""
    payload: dict[str, Any] = {"kind": kind, **fields}
    if body is not None:
        payload["body"] = body
    item: dict[str, Any] = await ok(await rest(client, account, "item.create", payload), 201)
    return item


async def get(client: Client, account: Account, item_id: str) -> Any:
    """item.get over REST: the raw response."""
    return await rest(client, account, "item.get", {"item_id": item_id})


async def fetch(client: Client, account: Account, item_id: str) -> dict[str, Any]:
    item: dict[str, Any] = await ok(await get(client, account, item_id))
    return item


async def sql(database_url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    """Run one statement on the test database (rows no command makes, checks of stored rows)."""
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def follow(client: Client, follower: Account, followee: Account) -> None:
    """follower follows followee (a public account: no request to approve)."""
    answer = await ok(await rest(client, follower, "user.follow", {"user_id": followee.id}))
    assert answer["status"] == "following", answer


async def befriend(client: Client, a: Account, b: Account) -> None:
    """a asks b to be friends and b accepts."""
    await ok(await rest(client, a, "friend_request.send", {"user_id": b.id}))
    await ok(await rest(client, b, "friend_request.accept", {"user_id": a.id}))


async def block(client: Client, blocker: Account, blocked: Account) -> None:
    await ok(await rest(client, blocker, "user.block", {"user_id": blocked.id}), 204)


async def make_private(client: Client, account: Account) -> None:
    await ok(await rest(client, account, "account.update", {"is_private": True}))


async def notes(client: Client, account: Account, kind: str | None = None) -> list[dict[str, Any]]:
    """The account's notifications (of one kind if given)."""
    page = await ok(await rest(client, account, "notification.list", {}))
    return [n for n in page["notifications"] if kind is None or n["kind"] == kind]


async def notified_after(client: Client, recipient: Account, actor: Account) -> None:
    """A barrier for "nothing else was notified": actor follows recipient, and this waits for
    that follow notification.

    The worker takes notification jobs in queue order (handling up to 20 at once), so once
    the follow shows, every job queued before it has been taken and, unless one ran far
    slower than the follow, handled: a check after this can miss a stray notification,
    but never fails for want of waiting.
    """
    await follow(client, actor, recipient)
    await until(lambda: _followed_by(client, recipient, actor))


async def _followed_by(client: Client, recipient: Account, actor: Account) -> bool:
    return any(actor.id in n["actor_ids"] for n in await notes(client, recipient, "follow"))
