"""What the data export reads beyond the profile: the items a person wrote.

Their analytics events come from storage.analytics.events_of_user (paged there).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from storage.db import Database


@dataclass(frozen=True)
class ExportedItem:
    id: uuid.UUID
    kind: str
    body: str | None
    parent_id: uuid.UUID | None
    visibility: str
    created_at: datetime
    edited_at: datetime | None


async def items_of_author(db: Database, author_id: uuid.UUID, limit: int) -> list[ExportedItem]:
    """The person's items of every kind (posts, comments, stories, slides, ...), newest
    first, at most `limit`; deleted ones are left out (their text is gone already)."""
    rows = await db.pool.fetch(
        """SELECT id, kind, body, parent_id, visibility, created_at, edited_at FROM items
           WHERE author_id = $1 AND deleted_at IS NULL
           ORDER BY created_at DESC, id DESC LIMIT $2""", author_id, limit)
    return [ExportedItem(**dict(row)) for row in rows]
