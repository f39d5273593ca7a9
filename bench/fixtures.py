"""Benchmark users (REST sign-up, like real clients) and their DMs and group (straight in storage)."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from dataclasses import dataclass

import aiohttp

from bench.common import log
from storage import conversations as conversation_store
from storage.db import Database

PASSWORD = "benchmark password 1"
SIGNUP_CONCURRENCY = 16


@dataclass(frozen=True)
class User:
    id: str
    token: str


@dataclass(frozen=True)
class Conversations:
    dms: list[tuple[int, int, str]]  # (user index, peer index, conversation id)
    group_id: str
    members: dict[str, list[str]]  # user id -> conversation ids, for the baseline server


async def sign_up(base_url: str, count: int, prefix: str) -> list[User]:
    """`count` accounts through POST /v1/auth/signup; each comes with its access token."""
    users: list[User | None] = [None] * count
    done = itertools.count(1)
    gate = asyncio.Semaphore(SIGNUP_CONCURRENCY)
    step = max(1, count // 10)

    async def one(http: aiohttp.ClientSession, index: int) -> None:
        username = f"{prefix}{index}"
        body = {"username": username, "email": f"{username}@bench.example.com", "password": PASSWORD}
        async with gate, http.post(f"{base_url}/v1/auth/signup", json=body) as resp:
            if resp.status != 201:
                raise RuntimeError(f"sign-up of {username} failed: {resp.status} {await resp.text()}")
            data = await resp.json()
        users[index] = User(id=data["user"]["id"], token=data["access_token"])
        n = next(done)
        if n % step == 0 or n == count:
            log(f"signing up users {n}/{count}")

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(one(http, i) for i in range(count)))
    return [u for u in users if u is not None]


async def create_conversations(dsn: str, users: list[User], pairs: int, group_size: int) -> Conversations:
    """DMs between users (0, 1), (2, 3), ... and one group of the first group_size users."""
    ids = [uuid.UUID(u.id) for u in users]
    members: dict[str, list[str]] = {}
    dms: list[tuple[int, int, str]] = []
    db = await Database.connect(dsn, 1, 2)
    try:
        async with db.transaction() as conn:
            for p in range(pairs):
                a, b = 2 * p, 2 * p + 1
                dm = await conversation_store.insert_conversation(
                    conn, kind="direct", title=None, avatar_url=None, created_by=ids[a],
                    key=conversation_store.direct_key(ids[a], ids[b]))
                assert dm is not None
                await conversation_store.upsert_members(conn, dm.id, [(ids[a], "member"),
                                                                      (ids[b], "member")], 0)
                dms.append((a, b, str(dm.id)))
                for i in (a, b):
                    members.setdefault(users[i].id, []).append(str(dm.id))
            group = await conversation_store.insert_conversation(
                conn, kind="group", title="benchmark", avatar_url=None, created_by=ids[0], key=None)
            assert group is not None
            await conversation_store.upsert_members(
                conn, group.id, [(ids[0], "owner"), *((i, "member") for i in ids[1:group_size])], 0)
            for user in users[:group_size]:
                members.setdefault(user.id, []).append(str(group.id))
    finally:
        await db.close()
    log(f"created {len(dms)} DMs and a group of {group_size}")
    return Conversations(dms=dms, group_id=str(group.id), members=members)
