"""User blocks: the one module that reads and writes user_blocks.

A block is a row (blocker_id, blocked_id). Statements that must weigh blocks inside the
same query (a page that leaves blocked users out, a DM's send check) embed the SQL
conditions below; everything else calls the functions. Who may see an item is the
database's hs_can_see, which reads the table itself.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from storage.db import Database


def either_way_sql(a: str, b: str) -> str:
    """SQL true when a has blocked b or b has blocked a; a and b are SQL expressions."""
    return f"""EXISTS (SELECT 1 FROM user_blocks ub
                       WHERE (ub.blocker_id = {a} AND ub.blocked_id = {b})
                          OR (ub.blocker_id = {b} AND ub.blocked_id = {a}))"""


def has_blocked_sql(blocker: str, blocked: str) -> str:
    """SQL true when `blocker` has blocked `blocked` (one direction); SQL expressions."""
    return f"""EXISTS (SELECT 1 FROM user_blocks ub
                       WHERE ub.blocker_id = {blocker} AND ub.blocked_id = {blocked})"""


async def record_block(conn: asyncpg.Connection, blocker: uuid.UUID, blocked: uuid.UUID) -> None:
    """Add the block row (again is a no-op); storage.networks.block cuts the edges with it."""
    await conn.execute("""INSERT INTO user_blocks (blocker_id, blocked_id) VALUES ($1, $2)
                          ON CONFLICT DO NOTHING""", blocker, blocked)


async def unblock(db: Database, blocker: uuid.UUID, blocked: uuid.UUID) -> None:
    await db.pool.execute(
        "DELETE FROM user_blocks WHERE blocker_id = $1 AND blocked_id = $2", blocker, blocked
    )


async def blocked_among(
    db: Database | asyncpg.Connection, actor: uuid.UUID, others: list[uuid.UUID]
) -> set[uuid.UUID]:
    """Which of `others` have blocked the actor."""
    executor = db.pool if isinstance(db, Database) else db
    rows = await executor.fetch(
        "SELECT blocker_id FROM user_blocks WHERE blocked_id = $1 AND blocker_id = ANY($2::uuid[])",
        actor, others,
    )
    return {r["blocker_id"] for r in rows}


async def blocked_by(db: Database, blocker: uuid.UUID, limit: int) -> list[tuple[uuid.UUID, datetime]]:
    """The users the blocker has blocked, most recent first."""
    rows = await db.pool.fetch(
        """SELECT blocked_id, created_at FROM user_blocks WHERE blocker_id = $1
           ORDER BY created_at DESC, blocked_id LIMIT $2""",
        blocker, limit,
    )
    return [(r["blocked_id"], r["created_at"]) for r in rows]


async def is_blocked_either_way(db: Database, a: uuid.UUID, b: uuid.UUID) -> bool:
    return bool(await db.pool.fetchval(f"SELECT {either_way_sql('$1', '$2')}", a, b))


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
