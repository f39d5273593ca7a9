"""Named queries on story highlights: an owner's chosen stories, kept past their 24 hours.

A highlight holds its owner's own stories in the owner's order. Who sees which story of
a highlight is each story's audience (hs_can_see) and blocks; expiry does not apply.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from storage.db import Database

HIGHLIGHT_COLUMNS = "h.id, h.owner_id, h.title, h.cover_story_id, h.created_at, h.updated_at"
# The highlight's stories that $1 may see, in order (the owner sees all of them).
VISIBLE_STORIES = """SELECT hi.story_id, hi.position FROM story_highlight_items hi
    JOIN items i ON i.id = hi.story_id AND i.deleted_at IS NULL
    WHERE hi.highlight_id = h.id AND (i.author_id = $1 OR hs_can_see($1, i))"""


@dataclass(frozen=True)
class Highlight:
    id: uuid.UUID
    owner_id: uuid.UUID
    title: str
    cover_story_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class HighlightView:
    """A highlight as one viewer sees it: the stories they may see, in order."""

    highlight: Highlight
    story_ids: list[uuid.UUID]

    @property
    def cover_id(self) -> uuid.UUID | None:
        """The chosen cover if the viewer may see it, else their first visible story."""
        cover = self.highlight.cover_story_id
        if cover is not None and cover in self.story_ids:
            return cover
        return self.story_ids[0] if self.story_ids else None


def _highlight(row: asyncpg.Record) -> Highlight:
    return Highlight(**{k: row[k] for k in Highlight.__dataclass_fields__})


async def count_for(conn: asyncpg.Connection, owner: uuid.UUID) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM story_highlights WHERE owner_id = $1",
                                   owner))


async def own_stories_among(conn: asyncpg.Connection, owner: uuid.UUID,
                            story_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Those of story_ids that are the owner's stories and not deleted (expired or not)."""
    rows = await conn.fetch(
        """SELECT id FROM items WHERE id = ANY($1::uuid[]) AND author_id = $2
               AND kind = 'story' AND deleted_at IS NULL""",
        story_ids, owner)
    return {r["id"] for r in rows}


async def insert(conn: asyncpg.Connection, owner: uuid.UUID, title: str,
                 cover: uuid.UUID | None, now: datetime) -> Highlight:
    row = await conn.fetchrow(
        f"""INSERT INTO story_highlights AS h (owner_id, title, cover_story_id, created_at,
                                               updated_at)
            VALUES ($1, $2, $3, $4, $4) RETURNING {HIGHLIGHT_COLUMNS}""",
        owner, title, cover, now)
    return _highlight(row)


async def set_stories(conn: asyncpg.Connection, highlight_id: uuid.UUID,
                      story_ids: list[uuid.UUID]) -> None:
    """Make these the highlight's stories, in this order."""
    await conn.execute("DELETE FROM story_highlight_items WHERE highlight_id = $1", highlight_id)
    await conn.execute(
        """INSERT INTO story_highlight_items (highlight_id, story_id, position)
           SELECT $1, s.id, s.n - 1 FROM unnest($2::uuid[]) WITH ORDINALITY AS s(id, n)""",
        highlight_id, story_ids)


async def get_locked(conn: asyncpg.Connection, highlight_id: uuid.UUID) -> Highlight | None:
    """The highlight, locked until the transaction ends (updates are read-modify-write)."""
    row = await conn.fetchrow(
        f"SELECT {HIGHLIGHT_COLUMNS} FROM story_highlights h WHERE h.id = $1 FOR UPDATE",
        highlight_id)
    return None if row is None else _highlight(row)


async def story_ids(conn: asyncpg.Connection, highlight_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await conn.fetch(
        """SELECT hi.story_id FROM story_highlight_items hi
           JOIN items i ON i.id = hi.story_id AND i.deleted_at IS NULL
           WHERE hi.highlight_id = $1 ORDER BY hi.position""",
        highlight_id)
    return [r["story_id"] for r in rows]


async def update(conn: asyncpg.Connection, highlight_id: uuid.UUID, title: str,
                 cover: uuid.UUID | None, now: datetime) -> None:
    await conn.execute(
        """UPDATE story_highlights SET title = $2, cover_story_id = $3, updated_at = $4
           WHERE id = $1""",
        highlight_id, title, cover, now)


async def delete(conn: asyncpg.Connection, highlight_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM story_highlights WHERE id = $1", highlight_id)


async def view(db: Database, highlight_id: uuid.UUID, viewer: uuid.UUID) -> HighlightView | None:
    """The highlight with the stories the viewer may see; None if it has none for them."""
    row = await db.pool.fetchrow(
        f"""SELECT {HIGHLIGHT_COLUMNS},
                   ARRAY(SELECT v.story_id FROM ({VISIBLE_STORIES}) v ORDER BY v.position)
                       AS story_ids
            FROM story_highlights h
            JOIN users u ON u.id = h.owner_id AND u.deleted_at IS NULL
            WHERE h.id = $2""",
        viewer, highlight_id)
    if row is None:
        return None
    found = HighlightView(_highlight(row), list(row["story_ids"]))
    if not found.story_ids and found.highlight.owner_id != viewer:
        return None
    return found


async def list_for(db: Database, owner: uuid.UUID, viewer: uuid.UUID, limit: int,
                   before: tuple[datetime, uuid.UUID] | None) -> list[HighlightView]:
    """The owner's highlights, newest first; for others only those with a story they may see."""
    rows = await db.pool.fetch(
        f"""SELECT * FROM (
                SELECT {HIGHLIGHT_COLUMNS},
                       ARRAY(SELECT v.story_id FROM ({VISIBLE_STORIES}) v ORDER BY v.position)
                           AS story_ids
                FROM story_highlights h
                WHERE h.owner_id = $2
                  AND ($4::timestamptz IS NULL OR (h.created_at, h.id) < ($4, $5::uuid))) h
            WHERE h.owner_id = $1 OR cardinality(h.story_ids) > 0
            ORDER BY h.created_at DESC, h.id DESC LIMIT $3""",
        viewer, owner, limit, *(before or (None, None)))
    return [HighlightView(_highlight(r), list(r["story_ids"])) for r in rows]
