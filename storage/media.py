"""Named queries on uploaded media and the messages that carry them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from storage.db import Database

MEDIA_COLUMNS = """id, owner_id, kind, content_type, size_bytes, sha256, status, storage_key,
    width, height, created_at, updated_at"""


@dataclass(frozen=True)
class Media:
    id: uuid.UUID
    owner_id: uuid.UUID
    kind: str
    content_type: str
    size_bytes: int
    sha256: str
    status: str
    storage_key: str
    width: int | None
    height: int | None
    created_at: datetime
    updated_at: datetime


def _media(row: asyncpg.Record) -> Media:
    return Media(**dict(row))


async def insert_media(
    db: Database, *, media_id: uuid.UUID, owner_id: uuid.UUID, kind: str, content_type: str,
    size_bytes: int, sha256: str, storage_key: str, status: str = "uploaded",
) -> Media:
    row = await db.pool.fetchrow(
        f"""INSERT INTO media (id, owner_id, kind, content_type, size_bytes, sha256, status,
                               storage_key)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {MEDIA_COLUMNS}""",
        media_id, owner_id, kind, content_type, size_bytes, sha256, status, storage_key,
    )
    return _media(row)


async def get_media(db: Database, media_id: uuid.UUID) -> Media | None:
    row = await db.pool.fetchrow(f"SELECT {MEDIA_COLUMNS} FROM media WHERE id = $1", media_id)
    return None if row is None else _media(row)


async def get_visible(db: Database, media_id: uuid.UUID, viewer_id: uuid.UUID) -> Media | None:
    """The media if the viewer owns it or is an active member where a live message carries it."""
    row = await db.pool.fetchrow(
        f"""SELECT {MEDIA_COLUMNS} FROM media
            WHERE id = $1 AND (owner_id = $2 OR EXISTS (
                SELECT 1 FROM message_media mm
                JOIN messages m ON m.id = mm.message_id AND m.deleted_at IS NULL
                JOIN conversation_members cm ON cm.conversation_id = m.conversation_id
                     AND cm.user_id = $2 AND cm.active
                WHERE mm.media_id = $1))""",
        media_id, viewer_id,
    )
    return None if row is None else _media(row)


async def owned_by(db: Database, media_ids: list[uuid.UUID], owner_id: uuid.UUID) -> list[Media]:
    """Those of media_ids that exist and belong to owner_id, in no particular order."""
    rows = await db.pool.fetch(
        f"SELECT {MEDIA_COLUMNS} FROM media WHERE id = ANY($1::uuid[]) AND owner_id = $2",
        media_ids, owner_id,
    )
    return [_media(r) for r in rows]


async def link_to_messages(
    conn: asyncpg.Connection, links: list[tuple[uuid.UUID, uuid.UUID, int]]
) -> int:
    """Record (message_id, media_id, position) links; returns how many were written.

    Only media owned by the message's sender are linked, and links that exist already or
    name media that vanished are skipped, so a replayed batch can never fail on them.
    """
    result = await conn.execute(
        """INSERT INTO message_media (message_id, media_id, position)
           SELECT t.message_id, t.media_id, t.position
           FROM unnest($1::uuid[], $2::uuid[], $3::smallint[]) AS t(message_id, media_id, position)
           JOIN messages m ON m.id = t.message_id
           JOIN media x ON x.id = t.media_id AND x.owner_id = m.sender_id
           ON CONFLICT DO NOTHING""",
        [link[0] for link in links], [link[1] for link in links], [link[2] for link in links],
    )
    return int(str(result).rsplit(" ", 1)[-1])


async def message_ids_carrying(db: Database, media_id: uuid.UUID) -> list[uuid.UUID]:
    """The messages that carry this media, oldest link first."""
    rows = await db.pool.fetch(
        """SELECT mm.message_id FROM message_media mm JOIN messages m ON m.id = mm.message_id
           WHERE mm.media_id = $1 ORDER BY m.created_at, m.id""",
        media_id,
    )
    return [r["message_id"] for r in rows]
