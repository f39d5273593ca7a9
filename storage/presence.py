"""Durable last-seen times behind the live presence kept in Redis or in memory."""

from __future__ import annotations

import uuid
from datetime import datetime

from storage.db import Database


async def set_last_seen(db: Database, user_ids: list[uuid.UUID], at: datetime) -> None:
    """Record that these users were connected at `at`; never moves a time back."""
    if not user_ids:
        return
    await db.pool.execute(
        """UPDATE users SET last_seen_at = $2
           WHERE id = ANY($1::uuid[]) AND (last_seen_at IS NULL OR last_seen_at < $2)""",
        user_ids, at,
    )


async def last_seen(db: Database, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, datetime]:
    """The recorded last-seen time of each of these users that has one."""
    if not user_ids:
        return {}
    rows = await db.pool.fetch(
        "SELECT id, last_seen_at FROM users WHERE id = ANY($1::uuid[]) AND last_seen_at IS NOT NULL",
        user_ids,
    )
    return {r["id"]: r["last_seen_at"] for r in rows}
