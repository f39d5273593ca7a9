"""Named queries on uploaded media and the messages that carry them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from storage.db import Database

MEDIA_COLUMNS = """id, owner_id, kind, content_type, size_bytes, sha256, status, storage_key,
    width, height, duration_ms, blurhash, failure_reason, processed_at, created_at, updated_at"""
RENDITION_COLUMNS = "variant, storage_key, content_type, width, height, size_bytes"


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
    duration_ms: int | None
    blurhash: str | None
    failure_reason: str | None
    processed_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Rendition:
    """A variant the media worker made: a thumbnail, the stripped re-encode, a poster, an mp4."""

    variant: str
    storage_key: str
    content_type: str
    width: int
    height: int
    size_bytes: int


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


async def get_visible(db: Database, media_id: uuid.UUID, viewer_id: uuid.UUID,
                      now: datetime) -> Media | None:
    """The media if the viewer owns it, is an active member where a live message carries it,
    or may see a live item that carries it (hs_can_see; a story only until it expires at
    `now`, or while it is in a highlight)."""
    row = await db.pool.fetchrow(
        f"""SELECT {MEDIA_COLUMNS} FROM media
            WHERE id = $1 AND (owner_id = $2 OR EXISTS (
                SELECT 1 FROM message_media mm
                JOIN messages m ON m.id = mm.message_id AND m.deleted_at IS NULL
                JOIN conversation_members cm ON cm.conversation_id = m.conversation_id
                     AND cm.user_id = $2 AND cm.active
                WHERE mm.media_id = $1) OR EXISTS (
                SELECT 1 FROM item_media im JOIN items i ON i.id = im.item_id
                WHERE im.media_id = $1 AND i.deleted_at IS NULL AND hs_can_see($2, i)
                  AND (i.expires_at IS NULL OR i.expires_at > $3 OR EXISTS (
                      SELECT 1 FROM story_highlight_items h WHERE h.story_id = i.id))))""",
        media_id, viewer_id, now,
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

async def delete_media(db: Database, media_id: uuid.UUID) -> None:
    await db.pool.execute("DELETE FROM media WHERE id = $1", media_id)


async def mark_processing(db: Database, media_id: uuid.UUID) -> Media | None:
    """Move an upload whose job is queued from uploaded to processing; the row as it is now."""
    row = await db.pool.fetchrow(
        f"""UPDATE media SET status = 'processing', updated_at = now()
            WHERE id = $1 AND status = 'uploaded' RETURNING {MEDIA_COLUMNS}""",
        media_id,
    )
    # No row moved: the worker got there first (or the media is gone).
    return _media(row) if row is not None else await get_media(db, media_id)


async def renditions(db: Database, media_id: uuid.UUID) -> list[Rendition]:
    rows = await db.pool.fetch(
        f"SELECT {RENDITION_COLUMNS} FROM media_renditions WHERE media_id = $1 ORDER BY variant",
        media_id,
    )
    return [Rendition(**dict(r)) for r in rows]


async def mark_ready(
    db: Database, media_id: uuid.UUID, *, width: int, height: int, duration_ms: int | None,
    blurhash: str | None, made: list[Rendition],
) -> Media | None:
    """Record the renditions and facts in one transaction; a replay replaces the same rows.

    Only an upload still uploaded or processing moves: a media that finished meanwhile
    (a concurrent redelivery) keeps its outcome. None if the media is gone.
    """
    async with db.transaction() as conn:
        row = await conn.fetchrow(
            f"""UPDATE media SET status = 'ready', width = $2, height = $3, duration_ms = $4,
                       blurhash = $5, failure_reason = NULL, processed_at = now(),
                       updated_at = now()
                WHERE id = $1 AND status IN ('uploaded', 'processing')
                RETURNING {MEDIA_COLUMNS}""",
            media_id, width, height, duration_ms, blurhash,
        )
        if row is None:
            return await _current(conn, media_id)
        await conn.execute(
            "DELETE FROM media_renditions WHERE media_id = $1 AND NOT variant = ANY($2::text[])",
            media_id, [r.variant for r in made],
        )
        await conn.executemany(
            """INSERT INTO media_renditions (media_id, variant, storage_key, content_type, width,
                                             height, size_bytes)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (media_id, variant) DO UPDATE SET storage_key = EXCLUDED.storage_key,
                   content_type = EXCLUDED.content_type, width = EXCLUDED.width,
                   height = EXCLUDED.height, size_bytes = EXCLUDED.size_bytes""",
            [(media_id, r.variant, r.storage_key, r.content_type, r.width, r.height, r.size_bytes)
             for r in made],
        )
        return _media(row)


async def mark_failed(db: Database, media_id: uuid.UUID, reason: str) -> Media | None:
    """Record why processing failed, unless the media finished meanwhile; None if it is gone."""
    async with db.transaction() as conn:
        row = await conn.fetchrow(
            f"""UPDATE media SET status = 'failed', failure_reason = $2, processed_at = now(),
                       updated_at = now()
                WHERE id = $1 AND status IN ('uploaded', 'processing')
                RETURNING {MEDIA_COLUMNS}""",
            media_id, reason,
        )
        if row is None:
            return await _current(conn, media_id)
        await conn.execute("DELETE FROM media_renditions WHERE media_id = $1", media_id)
        return _media(row)


async def _current(conn: asyncpg.Connection, media_id: uuid.UUID) -> Media | None:
    row = await conn.fetchrow(f"SELECT {MEDIA_COLUMNS} FROM media WHERE id = $1", media_id)
    return None if row is None else _media(row)


async def unqueued(db: Database, older_than_s: float, limit: int = 100) -> list[uuid.UUID]:
    """Uploads still marked uploaded after a while: their job may never have been queued."""
    rows = await db.pool.fetch(
        """SELECT id FROM media WHERE status = 'uploaded'
               AND created_at < now() - make_interval(secs => $1)
           ORDER BY created_at LIMIT $2""",
        older_than_s, limit,
    )
    return [r["id"] for r in rows]
