"""Durable last-seen times behind the live presence kept in Redis or in memory."""

from __future__ import annotations

import uuid
from datetime import datetime

from storage.blocks import either_way_sql
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


# Who may see whose presence (docs/conversations.md, "Presence"): yourself; otherwise, never
# across a block either way, and only a follower (follows holds approved follows only, so a
# private account's pending requesters are not followers), a friend, or someone sharing a
# conversation (both active members) with the user.
_VISIBLE_PAIRS = f"""
SELECT v.id AS viewer, t.id AS target
FROM unnest($1::uuid[]) AS v (id), unnest($2::uuid[]) AS t (id)
WHERE v.id = t.id OR (
    NOT {either_way_sql('v.id', 't.id')}
    AND (EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = v.id AND f.followee_id = t.id)
         OR EXISTS (SELECT 1 FROM friendships f WHERE f.user_id = t.id AND f.friend_id = v.id)
         OR EXISTS (SELECT 1 FROM conversation_members mine
                    JOIN conversation_members theirs
                      ON theirs.conversation_id = mine.conversation_id
                     AND theirs.user_id = t.id AND theirs.active
                    WHERE mine.user_id = v.id AND mine.active)))
"""


async def visible_pairs(
    db: Database, viewers: list[uuid.UUID], targets: list[uuid.UUID]
) -> set[tuple[uuid.UUID, uuid.UUID]]:
    """The (viewer, target) pairs where the viewer may see the target's presence; one query.

    One side is a single user in every caller (a query, or a re-check of one user's
    watchers), so the pairs are at most as many as the ids on the other side.
    """
    if not viewers or not targets:
        return set()
    rows = await db.pool.fetch(_VISIBLE_PAIRS, viewers, targets)
    return {(r["viewer"], r["target"]) for r in rows}


async def presence_visible(db: Database, viewer: uuid.UUID, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these users' presence the viewer may see; one query for the whole batch."""
    return {target for _, target in await visible_pairs(db, [viewer], ids)}
