"""Named queries on slides: items of kind 'slide' whose processing state lives in items.data.

The data keys (docs/slides.md): status, progress, queued, failure_reason, effects,
allow_duet, allow_stitch, visibility, source_media_id, video_media_id, duration_ms, width,
height, stitch_of / duet_of (the credited original) and reply_to_comment_id.

Until it is ready a slide's row is 'private' and data.visibility holds the audience its
author chose: hs_can_see, and so every feed, item read and media read, shows an unfinished
(or failed) slide to its author alone. mark_ready opens it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from storage.db import Database
from storage.items import ITEM_COLUMNS, Item, item_from_row
from storage.media import Rendition

COLUMNS = ITEM_COLUMNS
# Needs $1 = the reader: whether they may see the credited original of a stitch or duet.
CREDIT_VISIBLE = """(SELECT o.deleted_at IS NULL AND hs_can_see($1, o) FROM items o
    WHERE o.id = coalesce(i.data -> 'stitch_of' ->> 'item_id',
                          i.data -> 'duet_of' ->> 'item_id')::uuid) AS credit_visible"""
READY = "i.kind = 'slide' AND i.deleted_at IS NULL AND i.data ->> 'status' = 'ready'"
NOT_MUTED = """NOT EXISTS (SELECT 1 FROM user_mutes m WHERE m.muter_id = $1
    AND m.muted_id = i.author_id AND (m.until IS NULL OR m.until > $2))"""


@dataclass(frozen=True)
class Credit:
    """The original a stitch or duet was made from, as it was when the slide was created."""

    kind: str
    item_id: uuid.UUID
    author_id: uuid.UUID
    video_media_id: uuid.UUID
    start_ms: int | None = None
    length_ms: int | None = None
    audio: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"item_id": str(self.item_id), "author_id": str(self.author_id),
                               "video_media_id": str(self.video_media_id)}
        if self.kind == "stitch":
            out.update(start_ms=self.start_ms, length_ms=self.length_ms)
        else:
            out["audio"] = self.audio
        return out


@dataclass(frozen=True)
class Slide:
    """A slide's item row (for hydrate) and its slide fields read from items.data."""

    item: Item
    id: uuid.UUID
    author_id: uuid.UUID
    caption: str | None
    visibility: str
    allow_comments: bool
    allow_duet: bool
    allow_stitch: bool
    effects: list[dict[str, Any]]
    status: str
    progress: int
    failure_reason: str | None
    queued: bool
    source_media_id: uuid.UUID
    video_media_id: uuid.UUID | None
    duration_ms: int | None
    width: int | None
    height: int | None
    credit: Credit | None
    reply_to_comment_id: uuid.UUID | None
    reply_count: int
    share_count: int
    reaction_count: int
    reaction_counts: dict[str, int]
    view_count: int
    created_at: datetime
    deleted_at: datetime | None
    # Whether the reader may see the credited original (None: no credit, or not asked).
    credit_visible: bool | None = None


def _uuid(value: Any) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(str(value))


def _credit(data: dict[str, Any]) -> Credit | None:
    for kind in ("stitch", "duet"):
        raw = data.get(f"{kind}_of")
        if raw:
            return Credit(kind=kind, item_id=uuid.UUID(raw["item_id"]),
                          author_id=uuid.UUID(raw["author_id"]),
                          video_media_id=uuid.UUID(raw["video_media_id"]),
                          start_ms=raw.get("start_ms"), length_ms=raw.get("length_ms"),
                          audio=raw.get("audio"))
    return None


def _slide(row: asyncpg.Record) -> Slide:
    data: dict[str, Any] = row["data"]
    source = _uuid(data.get("source_media_id"))
    assert source is not None, "a slide always names its upload"
    return Slide(
        item=item_from_row(row), id=row["id"], author_id=row["author_id"], caption=row["body"],
        visibility=data.get("visibility") or row["visibility"], allow_comments=row["allow_comments"],
        allow_duet=bool(data.get("allow_duet")), allow_stitch=bool(data.get("allow_stitch")),
        effects=list(data.get("effects") or []), status=str(data.get("status")),
        progress=int(data.get("progress") or 0), failure_reason=data.get("failure_reason"),
        queued=bool(data.get("queued", True)), source_media_id=source,
        video_media_id=_uuid(data.get("video_media_id")), duration_ms=data.get("duration_ms"),
        width=data.get("width"), height=data.get("height"), credit=_credit(data),
        reply_to_comment_id=_uuid(data.get("reply_to_comment_id")),
        reply_count=row["reply_count"], share_count=row["share_count"],
        reaction_count=row["reaction_count"], reaction_counts=dict(row["reaction_counts"]),
        view_count=row["view_count"], created_at=row["created_at"], deleted_at=row["deleted_at"],
        credit_visible=row.get("credit_visible"),
    )


async def insert_slide(
    conn: asyncpg.Connection, *, author_id: uuid.UUID, caption: str | None, visibility: str,
    allow_comments: bool, data: dict[str, Any], idempotency_key: str | None,
) -> Slide | None:
    """A new slide; None when the author already used this idempotency key."""
    row = await conn.fetchrow(
        f"""INSERT INTO items AS i (kind, author_id, body, visibility, allow_comments, data,
                                    idempotency_key)
            VALUES ('slide', $1, $2, $3, $4, $5, $6)
            ON CONFLICT (author_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
            RETURNING {COLUMNS}""",
        author_id, caption, visibility, allow_comments, data, idempotency_key,
    )
    return None if row is None else _slide(row)


async def by_idempotency_key(db: Database, author_id: uuid.UUID, key: str) -> Slide | None:
    """The author's slide made with this key, deleted or not."""
    row = await db.pool.fetchrow(
        f"""SELECT {COLUMNS} FROM items i
            WHERE i.author_id = $1 AND i.idempotency_key = $2 AND i.kind = 'slide'""",
        author_id, key,
    )
    return None if row is None else _slide(row)


async def discard(db: Database, slide_id: uuid.UUID) -> None:
    """Remove a slide that was never announced (its job could not be queued)."""
    await db.pool.execute("DELETE FROM items WHERE id = $1 AND kind = 'slide'", slide_id)


async def link_video(conn: asyncpg.Connection, slide_id: uuid.UUID, media_id: uuid.UUID) -> None:
    """The slide carries this video (item_media position 0), replacing the one it had."""
    await conn.execute(
        """INSERT INTO item_media (item_id, media_id, position) VALUES ($1, $2, 0)
           ON CONFLICT (item_id, position) DO UPDATE SET media_id = EXCLUDED.media_id""",
        slide_id, media_id,
    )


async def get_slide(db: Database, slide_id: uuid.UUID) -> Slide | None:
    """Any slide by id, deleted ones included (the worker's read)."""
    row = await db.pool.fetchrow(
        f"SELECT {COLUMNS} FROM items i WHERE i.id = $1 AND i.kind = 'slide'", slide_id)
    return None if row is None else _slide(row)


async def get_visible(db: Database, slide_id: uuid.UUID, viewer_id: uuid.UUID) -> Slide | None:
    """A live slide the viewer may see: ready ones by hs_can_see, and every one of their own."""
    row = await db.pool.fetchrow(
        f"""SELECT {COLUMNS}, {CREDIT_VISIBLE} FROM items i
            WHERE i.id = $2 AND i.kind = 'slide' AND i.deleted_at IS NULL
              AND (i.author_id = $1 OR (i.data ->> 'status' = 'ready' AND hs_can_see($1, i)))""",
        viewer_id, slide_id,
    )
    return None if row is None else _slide(row)


async def original_usable(db: Database, original_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """Whether a stitch's or duet's original is still live and visible to the slide's author."""
    found = await db.pool.fetchval(
        """SELECT true FROM items o WHERE o.id = $1 AND o.kind = 'slide'
               AND o.deleted_at IS NULL AND hs_can_see($2, o)""",
        original_id, user_id,
    )
    return bool(found)


async def visible_comment(db: Database, comment_id: uuid.UUID, viewer_id: uuid.UUID) -> bool:
    """Whether a live comment or reply exists that the viewer may see."""
    found = await db.pool.fetchval(
        """SELECT true FROM items i WHERE i.id = $1 AND i.kind IN ('comment', 'reply')
               AND i.deleted_at IS NULL AND hs_can_see($2, i)""",
        comment_id, viewer_id,
    )
    return bool(found)


async def mark_queued(db: Database, slide_id: uuid.UUID) -> None:
    await db.pool.execute(
        """UPDATE items SET data = data || '{"queued": true}'
           WHERE id = $1 AND kind = 'slide' AND data @> '{"queued": false}'""",
        slide_id,
    )


async def unqueued(db: Database, older_than_s: float, limit: int = 100) -> list[uuid.UUID]:
    """Slides still waiting for their render job to be queued after a while."""
    rows = await db.pool.fetch(
        """SELECT id FROM items WHERE kind = 'slide' AND data @> '{"queued": false}'
               AND created_at < now() - make_interval(secs => $1)
           ORDER BY created_at LIMIT $2""",
        older_than_s, limit,
    )
    return [r["id"] for r in rows]


async def set_progress(db: Database, slide_id: uuid.UUID, percent: int) -> None:
    """Record render progress; it only moves forward, and only while processing."""
    await db.pool.execute(
        """UPDATE items SET data = jsonb_set(data, '{progress}', to_jsonb($2::int))
           WHERE id = $1 AND kind = 'slide' AND data ->> 'status' = 'processing'
             AND coalesce((data ->> 'progress')::int, 0) < $2""",
        slide_id, percent,
    )


async def save_rendition_media(
    conn: asyncpg.Connection, *, media_id: uuid.UUID, owner_id: uuid.UUID, key: str,
    size_bytes: int, sha256: str, width: int, height: int, duration_ms: int,
    blurhash: str | None, made: list[Rendition],
) -> None:
    """The rendered video as a ready media of the slide's author; a replay rewrites the rows."""
    await conn.execute(
        """INSERT INTO media (id, owner_id, kind, content_type, size_bytes, sha256, status,
                              storage_key, width, height, duration_ms, blurhash, processed_at)
           VALUES ($1, $2, 'video', 'video/mp4', $3, $4, 'ready', $5, $6, $7, $8, $9, now())
           ON CONFLICT (id) DO UPDATE SET size_bytes = EXCLUDED.size_bytes,
               sha256 = EXCLUDED.sha256, storage_key = EXCLUDED.storage_key,
               width = EXCLUDED.width, height = EXCLUDED.height,
               duration_ms = EXCLUDED.duration_ms, blurhash = EXCLUDED.blurhash,
               status = 'ready', failure_reason = NULL, processed_at = now(), updated_at = now()""",
        media_id, owner_id, size_bytes, sha256, key, width, height, duration_ms, blurhash,
    )
    await conn.execute("DELETE FROM media_renditions WHERE media_id = $1", media_id)
    await conn.executemany(
        """INSERT INTO media_renditions (media_id, variant, storage_key, content_type, width,
                                         height, size_bytes)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        [(media_id, r.variant, r.storage_key, r.content_type, r.width, r.height, r.size_bytes)
         for r in made],
    )


async def mark_ready(
    conn: asyncpg.Connection, slide_id: uuid.UUID, *, video_media_id: uuid.UUID,
    duration_ms: int, width: int, height: int,
) -> Slide | None:
    """Move a processing slide to ready with its video, and open it to its audience; None if
    it is not processing (any more)."""
    row = await conn.fetchrow(
        f"""UPDATE items i SET visibility = coalesce(i.data ->> 'visibility', i.visibility),
                   data = i.data || jsonb_build_object(
                   'status', 'ready', 'progress', 100, 'video_media_id', $2::text,
                   'duration_ms', $3::int, 'width', $4::int, 'height', $5::int)
            WHERE i.id = $1 AND i.kind = 'slide' AND i.deleted_at IS NULL
              AND i.data ->> 'status' = 'processing'
            RETURNING {COLUMNS}""",
        slide_id, str(video_media_id), duration_ms, width, height,
    )
    if row is None:
        return None
    await link_video(conn, slide_id, video_media_id)
    return _slide(row)


async def mark_failed(db: Database, slide_id: uuid.UUID, reason: str) -> Slide | None:
    """Move a processing slide to failed with a reason; None if it is not processing (any more)."""
    row = await db.pool.fetchrow(
        f"""UPDATE items i SET data = i.data || jsonb_build_object('status', 'failed',
                                                                   'failure_reason', $2::text)
            WHERE i.id = $1 AND i.kind = 'slide' AND i.deleted_at IS NULL
              AND i.data ->> 'status' = 'processing'
            RETURNING {COLUMNS}""",
        slide_id, reason,
    )
    return None if row is None else _slide(row)


async def delete_slide(conn: asyncpg.Connection, slide_id: uuid.UUID, at: datetime) -> None:
    """Leave a tombstone (comments stay reachable): caption, media and view log go."""
    await conn.execute(
        """UPDATE items SET deleted_at = $2, body = NULL WHERE id = $1 AND deleted_at IS NULL""",
        slide_id, at,
    )
    await conn.execute("DELETE FROM item_media WHERE item_id = $1", slide_id)
    await conn.execute("DELETE FROM slide_views WHERE slide_id = $1", slide_id)


async def delete_rendition_media(conn: asyncpg.Connection, media_id: uuid.UUID) -> list[str]:
    """Drop a rendered video's media row; the blob keys it had, for the caller to delete."""
    rows = await conn.fetch(
        """SELECT storage_key FROM media_renditions WHERE media_id = $1
           UNION SELECT storage_key FROM media WHERE id = $1""", media_id)
    await conn.execute("DELETE FROM media WHERE id = $1", media_id)
    return [r["storage_key"] for r in rows]


async def record_view(
    db: Database, slide_id: uuid.UUID, viewer_id: uuid.UUID, at: datetime, window_s: int,
) -> tuple[bool, int]:
    """Count a view unless this viewer's last counted one is within the window: (counted, count).

    Concurrent views by one viewer serialise on the view row, so exactly one counts.
    """
    async with db.transaction() as conn:
        counted = await conn.fetchval(
            """INSERT INTO slide_views AS v (slide_id, viewer_id, viewed_at) VALUES ($1, $2, $3)
               ON CONFLICT (slide_id, viewer_id) DO UPDATE SET viewed_at = EXCLUDED.viewed_at
               WHERE v.viewed_at <= EXCLUDED.viewed_at - make_interval(secs => $4)
               RETURNING true""",
            slide_id, viewer_id, at, window_s,
        )
        if counted:
            count = await conn.fetchval(
                "UPDATE items SET view_count = view_count + 1 WHERE id = $1 RETURNING view_count",
                slide_id)
        else:
            count = await conn.fetchval("SELECT view_count FROM items WHERE id = $1", slide_id)
    return bool(counted), int(count)


async def following(
    db: Database, viewer_id: uuid.UUID, now: datetime, after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Slide]:
    """Ready slides by people the viewer follows or is friends with, newest first."""
    rows = await db.pool.fetch(
        f"""SELECT {COLUMNS}, {CREDIT_VISIBLE} FROM items i
            WHERE {READY}
              AND i.author_id IN (SELECT followee_id FROM follows WHERE follower_id = $1
                                  UNION SELECT friend_id FROM friendships WHERE user_id = $1)
              AND {NOT_MUTED} AND hs_can_see($1, i)
              AND ($3::timestamptz IS NULL OR (i.created_at, i.id) < ($3, $4::uuid))
            ORDER BY i.created_at DESC, i.id DESC LIMIT $5""",
        viewer_id, now, after[0] if after else None, after[1] if after else None, limit,
    )
    return [_slide(r) for r in rows]


@dataclass(frozen=True)
class Trending:
    """The trending page's rows and each one's score, as of one instant."""

    slides: list[Slide]
    scores: list[float]


async def trending(
    db: Database, viewer_id: uuid.UUID, as_of: datetime, after: tuple[float, uuid.UUID] | None,
    limit: int, *, window_s: int, candidate_age_s: int,
) -> Trending:
    """Ready visible slides by engagement in the window before as_of, decayed by age.

    score = (1 + 3 reactions + 4 comments + 5 shares + 1 views, all within the window)
            / (age in hours + 2) ^ 1.5; only engagement up to as_of counts, so a page
    computed later for the same as_of gives the same scores.
    """
    rows = await db.pool.fetch(
        f"""WITH t AS (SELECT $2::timestamptz AS as_of,
                              $2::timestamptz - make_interval(secs => $6) AS since),
            scored AS (
                SELECT i.id, (1
                    + 3 * (SELECT count(*) FROM item_reactions r WHERE r.item_id = i.id
                           AND r.created_at > t.since AND r.created_at <= t.as_of)
                    + 4 * (SELECT count(*) FROM items c WHERE c.parent_id = i.id
                           AND c.kind = 'comment' AND c.deleted_at IS NULL
                           AND c.created_at > t.since AND c.created_at <= t.as_of)
                    + 5 * (SELECT count(*) FROM items s WHERE s.shared_id = i.id
                           AND s.kind = 'share' AND s.deleted_at IS NULL
                           AND s.created_at > t.since AND s.created_at <= t.as_of)
                    + (SELECT count(*) FROM slide_views v WHERE v.slide_id = i.id
                       AND v.viewed_at > t.since AND v.viewed_at <= t.as_of)
                    )::float8 / power(extract(epoch FROM t.as_of - i.created_at) / 3600.0 + 2, 1.5)
                    AS score
                FROM items i CROSS JOIN t
                WHERE {READY} AND i.created_at <= t.as_of
                  AND i.created_at > t.as_of - make_interval(secs => $7)
                  AND {NOT_MUTED} AND hs_can_see($1, i))
            SELECT {COLUMNS}, {CREDIT_VISIBLE}, s.score FROM scored s JOIN items i ON i.id = s.id
            WHERE $3::float8 IS NULL OR (s.score, s.id) < ($3, $4::uuid)
            ORDER BY s.score DESC, s.id DESC LIMIT $5""",
        viewer_id, as_of, after[0] if after else None, after[1] if after else None, limit,
        window_s, candidate_age_s,
    )
    return Trending([_slide(r) for r in rows], [float(r["score"]) for r in rows])


async def replies_to(
    db: Database, comment_id: uuid.UUID, viewer_id: uuid.UUID,
    after: tuple[datetime, uuid.UUID] | None, limit: int,
) -> list[Slide]:
    """Ready slides the viewer may see that answer this comment, newest first."""
    rows = await db.pool.fetch(
        f"""SELECT {COLUMNS}, {CREDIT_VISIBLE} FROM items i
            WHERE {READY} AND i.data ? 'reply_to_comment_id'
              AND i.data ->> 'reply_to_comment_id' = $2::text AND hs_can_see($1, i)
              AND ($3::timestamptz IS NULL OR (i.created_at, i.id) < ($3, $4::uuid))
            ORDER BY i.created_at DESC, i.id DESC LIMIT $5""",
        viewer_id, str(comment_id), after[0] if after else None, after[1] if after else None,
        limit,
    )
    return [_slide(r) for r in rows]
