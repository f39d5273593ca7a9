"""Named queries on stories: items of kind 'story' with one media, an audience and an expiry.

Every read compares expires_at with the `now` its caller passes (the injectable clock), so
a story is gone from every list the instant it expires, whatever the purge job has done.
Visibility is hs_can_see (storage/migrations/0008_social.sql), plus the time rule: an
expired story stays readable by its author (archive) and, while it is in a highlight, by
its audience.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from storage.db import Database
from storage.media import Rendition
from storage.users import UserBrief

STORY_COLUMNS = """i.id, i.author_id, u.username, u.display_name, u.avatar_url, i.body,
    i.visibility, i.allow_comments, i.data, i.view_count, i.reaction_count, i.reaction_counts,
    i.reply_count, i.created_at, i.expires_at,
    m.id AS media_id, m.kind AS media_kind, m.content_type AS media_content_type,
    m.status AS media_status, m.width AS media_width, m.height AS media_height,
    m.duration_ms AS media_duration_ms, m.blurhash AS media_blurhash,
    EXISTS (SELECT 1 FROM story_views v WHERE v.story_id = i.id AND v.viewer_id = $1) AS seen,
    (SELECT r.kind FROM item_reactions r WHERE r.item_id = i.id AND r.user_id = $1)
        AS my_reaction"""
# $1 is always the viewer.
STORY_FROM = """FROM items i JOIN users u ON u.id = i.author_id
    LEFT JOIN item_media im ON im.item_id = i.id AND im.position = 0
    LEFT JOIN media m ON m.id = im.media_id"""
LIVE = "i.kind = 'story' AND i.deleted_at IS NULL"
# Readable by $1 at $2: the author always; others within the audience while it is active,
# or after it while it is in a highlight.
READABLE = f"""{LIVE} AND u.deleted_at IS NULL AND (i.author_id = $1 OR (hs_can_see($1, i)
    AND (i.expires_at > $2
         OR EXISTS (SELECT 1 FROM story_highlight_items h WHERE h.story_id = i.id))))"""
# Active and within $1's audience at $2: what may be viewed, reacted to, replied to.
ACTIVE = f"{LIVE} AND u.deleted_at IS NULL AND i.expires_at > $2 AND hs_can_see($1, i)"


@dataclass(frozen=True)
class StoryMedia:
    id: uuid.UUID
    kind: str
    content_type: str
    status: str
    width: int | None
    height: int | None
    duration_ms: int | None
    blurhash: str | None


@dataclass(frozen=True)
class Story:
    """A story as one viewer sees it: seen and my_reaction are that viewer's."""

    id: uuid.UUID
    author: UserBrief
    caption: str | None
    audience: str
    allow_comments: bool
    allow_replies: bool
    # None once the retention purge removed it.
    media: StoryMedia | None
    view_count: int
    reaction_count: int
    reaction_counts: dict[str, int]
    comment_count: int
    created_at: datetime
    expires_at: datetime
    seen: bool
    my_reaction: str | None


@dataclass(frozen=True)
class NewStory:
    author_id: uuid.UUID
    caption: str | None
    audience: str
    media_id: uuid.UUID
    allow_replies: bool
    allow_comments: bool
    created_at: datetime
    expires_at: datetime
    idempotency_key: str | None


@dataclass(frozen=True)
class FeedAuthor:
    """One author of the story tray: unseen authors sort first, then by their newest story."""

    author_id: uuid.UUID
    has_unseen: bool
    latest_at: datetime


@dataclass(frozen=True)
class Viewer:
    user: UserBrief
    viewed_at: datetime
    reaction: str | None


def _story(row: asyncpg.Record) -> Story:
    media = None if row["media_id"] is None else StoryMedia(
        id=row["media_id"], kind=row["media_kind"], content_type=row["media_content_type"],
        status=row["media_status"], width=row["media_width"], height=row["media_height"],
        duration_ms=row["media_duration_ms"], blurhash=row["media_blurhash"])
    data: dict[str, Any] = row["data"] or {}
    return Story(
        id=row["id"],
        author=UserBrief(row["author_id"], row["username"], row["display_name"],
                         row["avatar_url"]),
        caption=row["body"], audience=row["visibility"], allow_comments=row["allow_comments"],
        allow_replies=bool(data.get("allow_replies", True)), media=media,
        view_count=row["view_count"], reaction_count=row["reaction_count"],
        reaction_counts=dict(row["reaction_counts"] or {}), comment_count=row["reply_count"],
        created_at=row["created_at"], expires_at=row["expires_at"], seen=row["seen"],
        my_reaction=row["my_reaction"])


async def lock_author(conn: asyncpg.Connection, author_id: uuid.UUID) -> None:
    """Serialise one author's creates, so two at once cannot both pass the active limit."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('story:' || $1::uuid::text, 0))",
        author_id)


async def active_count(conn: asyncpg.Connection, author_id: uuid.UUID, now: datetime) -> int:
    return int(await conn.fetchval(
        """SELECT count(*) FROM items i
           WHERE i.author_id = $1 AND i.kind = 'story' AND i.deleted_at IS NULL
             AND i.expires_at > $2""",
        author_id, now))


async def insert_story(conn: asyncpg.Connection, new: NewStory) -> uuid.UUID | None:
    """Insert the story and its media link; None if its idempotency key was taken meanwhile."""
    story_id = await conn.fetchval(
        """INSERT INTO items (kind, author_id, body, visibility, allow_comments, data,
                              idempotency_key, created_at, expires_at)
           VALUES ('story', $1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (author_id, idempotency_key) WHERE idempotency_key IS NOT NULL
           DO NOTHING RETURNING id""",
        new.author_id, new.caption, new.audience, new.allow_comments,
        {"allow_replies": new.allow_replies}, new.idempotency_key, new.created_at,
        new.expires_at)
    if story_id is None:
        return None
    await conn.execute("INSERT INTO item_media (item_id, media_id, position) VALUES ($1, $2, 0)",
                       story_id, new.media_id)
    return uuid.UUID(str(story_id))


async def readable(db: Database, story_id: uuid.UUID, viewer: uuid.UUID,
                   now: datetime) -> Story | None:
    """The story if the viewer may read it now (see READABLE)."""
    row = await db.pool.fetchrow(
        f"SELECT {STORY_COLUMNS} {STORY_FROM} WHERE i.id = $3 AND {READABLE}",
        viewer, now, story_id)
    return None if row is None else _story(row)


async def active(db: Database, story_id: uuid.UUID, viewer: uuid.UUID,
                 now: datetime) -> Story | None:
    """The story if it is active and within the viewer's audience (the author's own too)."""
    row = await db.pool.fetchrow(
        f"SELECT {STORY_COLUMNS} {STORY_FROM} WHERE i.id = $3 AND {ACTIVE}",
        viewer, now, story_id)
    return None if row is None else _story(row)


async def readable_among(db: Database, story_ids: list[uuid.UUID], viewer: uuid.UUID,
                         now: datetime) -> dict[uuid.UUID, Story]:
    rows = await db.pool.fetch(
        f"SELECT {STORY_COLUMNS} {STORY_FROM} WHERE i.id = ANY($3::uuid[]) AND {READABLE}",
        viewer, now, story_ids)
    return {r["id"]: _story(r) for r in rows}


async def feed_authors(
    db: Database, viewer: uuid.UUID, now: datetime, limit: int,
    after: tuple[bool, datetime, uuid.UUID] | None,
) -> list[FeedAuthor]:
    """Authors you follow or are friends with who have active stories you may see.

    Unseen first, then by newest story, then by id; `after` is the last author of the
    previous page. Muted authors (mute not ended) are left out, as from every feed.
    """
    rows = await db.pool.fetch(
        f"""WITH authors AS (
                SELECT followee_id AS id FROM follows WHERE follower_id = $1
                UNION SELECT friend_id FROM friendships WHERE user_id = $1),
            tray AS (
                SELECT i.author_id,
                       bool_or(NOT EXISTS (SELECT 1 FROM story_views v
                                           WHERE v.story_id = i.id AND v.viewer_id = $1))
                           AS has_unseen,
                       max(i.created_at) AS latest_at
                FROM authors a JOIN items i ON i.author_id = a.id
                JOIN users u ON u.id = i.author_id
                WHERE {ACTIVE}
                  AND NOT EXISTS (SELECT 1 FROM user_mutes mu
                                  WHERE mu.muter_id = $1 AND mu.muted_id = i.author_id
                                    AND (mu.until IS NULL OR mu.until > $2))
                GROUP BY i.author_id)
            SELECT author_id, has_unseen, latest_at FROM tray
            WHERE $4::boolean IS NULL
               OR (has_unseen, latest_at, author_id) < ($4, $5::timestamptz, $6::uuid)
            ORDER BY has_unseen DESC, latest_at DESC, author_id DESC
            LIMIT $3""",
        viewer, now, limit, *(after or (None, None, None)))
    return [FeedAuthor(r["author_id"], r["has_unseen"], r["latest_at"]) for r in rows]


async def active_of(db: Database, author_ids: list[uuid.UUID], viewer: uuid.UUID,
                    now: datetime) -> list[Story]:
    """The active stories of these authors the viewer may see, oldest first."""
    rows = await db.pool.fetch(
        f"""SELECT {STORY_COLUMNS} {STORY_FROM}
            WHERE i.author_id = ANY($3::uuid[]) AND {ACTIVE}
            ORDER BY i.created_at, i.id""",
        viewer, now, author_ids)
    return [_story(r) for r in rows]


async def archive(db: Database, owner: uuid.UUID, now: datetime, limit: int,
                  before: tuple[datetime, uuid.UUID] | None) -> list[Story]:
    """The owner's expired stories, most recently expired first."""
    rows = await db.pool.fetch(
        f"""SELECT {STORY_COLUMNS} {STORY_FROM}
            WHERE i.author_id = $1 AND {LIVE} AND i.expires_at <= $2
              AND ($4::timestamptz IS NULL OR (i.expires_at, i.id) < ($4, $5::uuid))
            ORDER BY i.expires_at DESC, i.id DESC LIMIT $3""",
        owner, now, limit, *(before or (None, None)))
    return [_story(r) for r in rows]


async def tombstone(conn: asyncpg.Connection, story_id: uuid.UUID, owner: uuid.UUID,
                    now: datetime) -> bool:
    """Delete the owner's story (a tombstone without caption or media, out of highlights).

    Highlights left without a story go too. False if there was no such live story.
    """
    done = await conn.fetchval(
        f"""UPDATE items i SET deleted_at = $3, body = NULL
            WHERE i.id = $1 AND i.author_id = $2 AND {LIVE} RETURNING i.id""",
        story_id, owner, now)
    if done is None:
        return False
    await conn.execute("DELETE FROM item_media WHERE item_id = $1", story_id)
    emptied = await conn.fetch(
        "DELETE FROM story_highlight_items WHERE story_id = $1 RETURNING highlight_id", story_id)
    await conn.execute(
        """DELETE FROM story_highlights h WHERE h.id = ANY($1::uuid[])
               AND NOT EXISTS (SELECT 1 FROM story_highlight_items x WHERE x.highlight_id = h.id)""",
        [r["highlight_id"] for r in emptied])
    return True


async def record_view(db: Database, story_id: uuid.UUID, viewer: uuid.UUID,
                      at: datetime) -> int | None:
    """Count the viewer once: the new view count on a first view, None on a repeat.

    One statement: the insert and the counter commit together, and concurrent views by
    one viewer wait on the primary key, so exactly one of them increments.
    """
    value = await db.pool.fetchval(
        """WITH first AS (
               INSERT INTO story_views (story_id, viewer_id, viewed_at) VALUES ($1, $2, $3)
               ON CONFLICT DO NOTHING RETURNING story_id)
           UPDATE items SET view_count = view_count + 1 FROM first
           WHERE items.id = first.story_id RETURNING items.view_count""",
        story_id, viewer, at)
    return None if value is None else int(value)


async def view_count(db: Database, story_id: uuid.UUID) -> int:
    return int(await db.pool.fetchval("SELECT view_count FROM items WHERE id = $1", story_id) or 0)


async def user_brief(db: Database, user_id: uuid.UUID) -> UserBrief | None:
    row = await db.pool.fetchrow(
        """SELECT id, username, display_name, avatar_url FROM users
           WHERE id = $1 AND deleted_at IS NULL""", user_id)
    return None if row is None else UserBrief(**dict(row))


async def viewers(db: Database, story_id: uuid.UUID, limit: int,
                  before: tuple[datetime, uuid.UUID] | None) -> list[Viewer]:
    """Who viewed the story, newest first, with their reaction; blocked users left out."""
    rows = await db.pool.fetch(
        """SELECT v.viewed_at, u.id, u.username, u.display_name, u.avatar_url,
                  (SELECT r.kind FROM item_reactions r
                   WHERE r.item_id = v.story_id AND r.user_id = v.viewer_id) AS reaction
           FROM story_views v JOIN items i ON i.id = v.story_id
           JOIN users u ON u.id = v.viewer_id AND u.deleted_at IS NULL
           WHERE v.story_id = $1 AND NOT hs_blocked(i.author_id, v.viewer_id)
             AND ($3::timestamptz IS NULL OR (v.viewed_at, v.viewer_id) < ($3, $4::uuid))
           ORDER BY v.viewed_at DESC, v.viewer_id DESC LIMIT $2""",
        story_id, limit, *(before or (None, None)))
    return [Viewer(UserBrief(r["id"], r["username"], r["display_name"], r["avatar_url"]),
                   r["viewed_at"], r["reaction"]) for r in rows]


async def renditions_of(db: Database, media_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Rendition]]:
    """The renditions of several media at once, by media id."""
    rows = await db.pool.fetch(
        """SELECT media_id, variant, storage_key, content_type, width, height, size_bytes
           FROM media_renditions WHERE media_id = ANY($1::uuid[]) ORDER BY media_id, variant""",
        media_ids)
    found: dict[uuid.UUID, list[Rendition]] = {}
    for r in rows:
        values = dict(r)
        found.setdefault(values.pop("media_id"), []).append(Rendition(**values))
    return found


@dataclass(frozen=True)
class PurgedMedia:
    media_id: uuid.UUID
    storage_keys: list[str]


async def purge_expired_media(conn: asyncpg.Connection, cutoff: datetime,
                              limit: int) -> list[PurgedMedia]:
    """Delete up to `limit` media rows used only by stories expired at or before cutoff.

    A media also on a message, another item, a story still within retention or any
    highlighted story is kept. Returns the blob keys (original and renditions) of what
    went, for the caller to delete from the blob store after the commit.
    """
    rows = await conn.fetch(
        """WITH doomed AS (
               SELECT DISTINCT im.media_id AS id
               FROM items i JOIN item_media im ON im.item_id = i.id
               WHERE i.kind = 'story' AND i.expires_at <= $1
                 AND NOT EXISTS (
                     SELECT 1 FROM item_media o JOIN items oi ON oi.id = o.item_id
                     WHERE o.media_id = im.media_id
                       AND (oi.kind <> 'story' OR oi.expires_at > $1
                            OR EXISTS (SELECT 1 FROM story_highlight_items h
                                       WHERE h.story_id = oi.id)))
                 AND NOT EXISTS (SELECT 1 FROM message_media mm WHERE mm.media_id = im.media_id)
               LIMIT $2),
           locked AS (
               SELECT m.id, m.storage_key FROM media m JOIN doomed d ON d.id = m.id
               FOR UPDATE OF m SKIP LOCKED),
           made AS (
               SELECT r.media_id, array_agg(r.storage_key) AS keys
               FROM media_renditions r JOIN locked l ON l.id = r.media_id GROUP BY r.media_id),
           gone AS (
               DELETE FROM media m USING locked l WHERE m.id = l.id RETURNING m.id)
           SELECT l.id, l.storage_key, coalesce(made.keys, '{}') AS keys
           FROM gone g JOIN locked l ON l.id = g.id LEFT JOIN made ON made.media_id = l.id""",
        cutoff, limit)
    return [PurgedMedia(r["id"], [r["storage_key"], *r["keys"]]) for r in rows]
