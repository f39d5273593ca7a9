"""Rows the storage tests start from, inserted directly (no command makes them this bare)."""

from __future__ import annotations

import secrets
import uuid

from storage import conversations
from storage.db import Database


async def new_user(db: Database, *, private: bool = False) -> uuid.UUID:
    name = f"s{secrets.token_hex(6)}"
    user_id: uuid.UUID = await db.pool.fetchval(
        "INSERT INTO users (username, display_name, is_private) VALUES ($1, $1, $2) RETURNING id",
        name, private)
    return user_id


async def new_users(db: Database, count: int) -> list[uuid.UUID]:
    return [await new_user(db) for _ in range(count)]


async def new_group(db: Database, owner: uuid.UUID, *others: uuid.UUID,
                    joined_event_id: int = 0) -> uuid.UUID:
    """A group conversation with these members, all joined at joined_event_id."""
    async with db.transaction() as conn:
        made = await conversations.insert_conversation(
            conn, kind="group", title="t", avatar_url=None, created_by=owner, key=None)
        assert made is not None
        await conversations.upsert_members(
            conn, made.id, [(owner, "owner"), *((u, "member") for u in others)], joined_event_id)
    return made.id
