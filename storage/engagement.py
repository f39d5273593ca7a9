"""Engagement on items: reactions, shares, saves, quote detach; block checks for live delivery."""

from __future__ import annotations

import uuid

from storage.db import Database


async def blocked_pairs(db: Database, users: list[uuid.UUID],
                        others: list[uuid.UUID]) -> set[tuple[uuid.UUID, uuid.UUID]]:
    """The (user, other) pairs where either has blocked the other."""
    rows = await db.pool.fetch(
        """SELECT blocker_id AS a, blocked_id AS b FROM user_blocks
           WHERE blocker_id = ANY($1::uuid[]) AND blocked_id = ANY($2::uuid[])
           UNION
           SELECT blocked_id, blocker_id FROM user_blocks
           WHERE blocked_id = ANY($1::uuid[]) AND blocker_id = ANY($2::uuid[])""",
        users, others,
    )
    return {(r["a"], r["b"]) for r in rows}
