"""Helpers for the feed tests (test_feeds.py, test_feeds_paging.py): items written straight to the
database at fixed times, relations and cliques, reading a list to its end."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from tests.conftest import Account
from tests.handlers.conversation_helpers import ok, rest

Client = TestClient[Any, Any]


# Items made here carry fixed timestamps: T0 + n seconds.
T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def put(db: asyncpg.Connection, author: Account, n: float = 0, *, kind: str = "post",
              visibility: str = "public", clique: str | None = None, parent: str | None = None,
              root: str | None = None, shared: str | None = None, deleted: bool = False,
              expires: datetime | None = None, tags: tuple[str, ...] = (), at: datetime | None = None) -> str:
    """An item written straight to the database at T0 + n seconds; its id."""
    created = at or T0 + timedelta(seconds=n)
    item_id = await db.fetchval(
        """INSERT INTO items (kind, author_id, parent_id, root_id, shared_id, clique_id, body,
                              visibility, created_at, deleted_at, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id""",
        kind, uuid.UUID(author.id), _id(parent), _id(root or parent), _id(shared), _id(clique),
        None if deleted else f"{kind} at {n}", visibility, created, created if deleted else None,
        expires)
    for tag in tags:
        await db.execute("INSERT INTO item_tags (tag, item_id, created_at) VALUES ($1, $2, $3)",
                         tag, item_id, created)
    return str(item_id)


def _id(value: str | None) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(value)


async def relate(client: Client, how: str, a: Account, b: Account) -> None:
    """a follows b, a and b become friends, or a lists b as a close friend (over REST)."""
    if how == "follows":
        answer = await ok(await rest(client, a, "user.follow", {"user_id": b.id}))
        assert answer["status"] == "following", answer
    elif how == "friendships":
        await ok(await rest(client, a, "friend_request.send", {"user_id": b.id}))
        await ok(await rest(client, b, "friend_request.accept", {"user_id": a.id}))
    else:
        await ok(await rest(client, a, "close_friend.add", {"user_id": b.id}), 204)


async def clique(db: asyncpg.Connection, owner: Account, *, private: bool = False) -> str:
    clique_id = await db.fetchval(
        "INSERT INTO cliques (name, is_private, created_by) VALUES ('c', $1, $2) RETURNING id",
        private, uuid.UUID(owner.id))
    await join(db, str(clique_id), owner, "owner")
    return str(clique_id)


async def join(db: asyncpg.Connection, clique_id: str, user: Account, role: str = "member") -> None:
    await db.execute("INSERT INTO clique_members (clique_id, user_id, role) VALUES ($1, $2, $3)",
                     uuid.UUID(clique_id), uuid.UUID(user.id), role)


async def page(client: Client, account: Account, name: str, **payload: Any) -> dict[str, Any]:
    """One page of a feed command over REST."""
    body: dict[str, Any] = await ok(await rest(client, account, name, payload))
    return body


async def ids(client: Client, account: Account, name: str, **payload: Any) -> list[str]:
    """Every item id of a list, following next_cursor to the end."""
    found: list[str] = []
    cursor = None
    for _ in range(100):
        args = {**payload, **({"cursor": cursor} if cursor else {})}
        body = await page(client, account, name, **args)
        found += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return found
    raise AssertionError("the list did not end")
