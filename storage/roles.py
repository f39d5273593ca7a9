"""The users.role column: user, moderator or admin."""

from __future__ import annotations

import uuid

from storage.db import Database


async def set_role(db: Database, user_id: uuid.UUID, role: str) -> bool:
    """Set a live user's role; False if there is no such user."""
    result = await db.pool.execute(
        "UPDATE users SET role = $2, updated_at = now() WHERE id = $1 AND deleted_at IS NULL",
        user_id, role,
    )
    return str(result).endswith(" 1")

