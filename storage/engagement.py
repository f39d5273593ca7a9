"""Engagement on items: reactions, shares, saves, quote detach; block checks for live delivery.

Counters (reaction_count, reaction_counts, share_count) change in the transaction that
changes the rows they count, with the item row locked, so concurrent reactions and
shares keep them exact. A change's live version is the database clock in microseconds,
read while the row is locked, so for one item versions grow in commit order.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from storage.blocks import either_way_sql
from storage.db import Database
from storage.items import ITEM_COLUMNS, Item, item_from_row

# The live version of a change (item.updated), in the unit handlers/items.py uses too.
VERSION = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint"


@dataclass(frozen=True)
class Reactions:
    """An item's reaction counters after a change, and the caller's reaction."""

    item_id: uuid.UUID
    author_id: uuid.UUID
    reaction_count: int
    reaction_counts: dict[str, int]
    my_reaction: str | None
    previous: str | None
    # The live version of this state (None when nothing changed).
    version: int | None

    @property
    def changed(self) -> bool:
        return self.version is not None


@dataclass(frozen=True)
class Reactor:
    """One user's reaction to an item, with what a list shows of the user."""

    user_id: uuid.UUID
    username: str
    display_name: str
    avatar_url: str | None
    kind: str
    created_at: datetime


@dataclass(frozen=True)
class Shared:
    """A user's share of an item and the item's share_count after it."""

    share: Item
    share_count: int
    created: bool
    version: int | None


@dataclass(frozen=True)
class Unshared:
    """What undoing a share removed (None: there was none) and the share_count after it."""

    share_id: uuid.UUID | None
    shared_id: uuid.UUID
    share_count: int
    version: int | None


# -- reactions ---------------------------------------------------------------------------


async def _lock_counts(conn: asyncpg.Connection, item_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT author_id, reaction_count, reaction_counts FROM items
           WHERE id = $1 FOR UPDATE""", item_id)


async def set_reaction(db: Database, item_id: uuid.UUID, user_id: uuid.UUID,
                       kind: str | None) -> Reactions | None:
    """Set (kind) or remove (None) a user's reaction; None if the item is gone."""
    async with db.transaction() as conn:
        # Every reaction change on the item waits here, so the read below stays true.
        row = await _lock_counts(conn, item_id)
        if row is None:
            return None
        previous = await conn.fetchval(
            "SELECT kind FROM item_reactions WHERE item_id = $1 AND user_id = $2",
            item_id, user_id)
        counts: dict[str, int] = dict(row["reaction_counts"])
        total = int(row["reaction_count"])
        if previous == kind:
            return Reactions(item_id, row["author_id"], total, counts, kind, previous, None)
        if kind is None:
            await conn.execute("DELETE FROM item_reactions WHERE item_id = $1 AND user_id = $2",
                               item_id, user_id)
        else:
            await conn.execute(
                """INSERT INTO item_reactions (item_id, user_id, kind) VALUES ($1, $2, $3)
                   ON CONFLICT (item_id, user_id)
                   DO UPDATE SET kind = EXCLUDED.kind, created_at = now()""",
                item_id, user_id, kind)
        if previous is not None:
            left = counts.get(previous, 0) - 1
            if left > 0:
                counts[previous] = left
            else:
                counts.pop(previous, None)
            total -= 1
        if kind is not None:
            counts[kind] = counts.get(kind, 0) + 1
            total += 1
        version = await conn.fetchval(
            f"""UPDATE items SET reaction_count = $2, reaction_counts = $3 WHERE id = $1
               RETURNING {VERSION}""",
            item_id, total, counts)
        return Reactions(item_id, row["author_id"], total, counts, kind, previous, int(version))


async def reactors_page(db: Database, viewer: uuid.UUID, item_id: uuid.UUID, kind: str | None,
                        after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[Reactor]:
    """Who reacted to an item, newest first; users the viewer blocks or is blocked by are left
    out, and so are deleted accounts."""
    rows = await db.pool.fetch(
        f"""SELECT r.user_id, u.username, u.display_name, u.avatar_url, r.kind, r.created_at
           FROM item_reactions r JOIN users u ON u.id = r.user_id
           WHERE r.item_id = $2 AND ($3::text IS NULL OR r.kind = $3)
             AND ($4::timestamptz IS NULL OR (r.created_at, r.user_id) < ($4, $5))
             AND u.deleted_at IS NULL
             AND NOT {either_way_sql('$1', 'r.user_id')}
           ORDER BY r.created_at DESC, r.user_id DESC
           LIMIT $6""",
        viewer, item_id, kind, after[0] if after else None, after[1] if after else None, limit)
    return [Reactor(**dict(r)) for r in rows]


# -- shares ------------------------------------------------------------------------------


async def share(db: Database, user_id: uuid.UUID, item_id: uuid.UUID,
                visibility: str) -> Shared | None:
    """The user's share of an item, made now or found; None if the item is gone."""
    async with db.transaction() as conn:
        row = await conn.fetchrow(
            f"""INSERT INTO items AS i (kind, author_id, shared_id, visibility)
                VALUES ('share', $1, $2, $3)
                ON CONFLICT (author_id, shared_id) WHERE kind = 'share' DO NOTHING
                RETURNING {ITEM_COLUMNS}""",
            user_id, item_id, visibility)
        if row is not None:
            counted = await conn.fetchrow(
                f"""UPDATE items SET share_count = share_count + 1 WHERE id = $1
                   RETURNING share_count, {VERSION} AS version""", item_id)
            # The insert's foreign key check holds the original: it is still there.
            assert counted is not None
            return Shared(item_from_row(row), counted["share_count"], True, counted["version"])
    # Already shared (possibly by a concurrent call that has committed by now).
    existing = await db.pool.fetchrow(
        f"""SELECT {ITEM_COLUMNS}, o.share_count AS original_count
            FROM items i JOIN items o ON o.id = i.shared_id
            WHERE i.kind = 'share' AND i.author_id = $1 AND i.shared_id = $2""",
        user_id, item_id)
    if existing is None:
        return None
    return Shared(item_from_row(existing), existing["original_count"], False, None)


async def unshare(db: Database, user_id: uuid.UUID, item_id: uuid.UUID) -> Unshared | None:
    """Delete the user's share of an item (hard delete); None if there was none."""
    async with db.transaction() as conn:
        share_id = await conn.fetchval(
            "DELETE FROM items WHERE kind = 'share' AND author_id = $1 AND shared_id = $2 "
            "RETURNING id", user_id, item_id)
        if share_id is None:
            return None
        counted = await conn.fetchrow(
            f"""UPDATE items SET share_count = share_count - 1 WHERE id = $1
               RETURNING share_count, {VERSION} AS version""", item_id)
        if counted is None:
            return Unshared(share_id, item_id, 0, None)
        return Unshared(share_id, item_id, counted["share_count"], counted["version"])


# -- saves -------------------------------------------------------------------------------


async def save(db: Database, user_id: uuid.UUID, item_id: uuid.UUID) -> datetime:
    """Bookmark an item (again: no change); when it was saved."""
    # DO UPDATE (a no-op keeping the first created_at) rather than DO NOTHING plus a read:
    # it returns the row a concurrent save committed, which a read in the same statement,
    # on the statement's older snapshot, would miss.
    saved_at = await db.pool.fetchval(
        """INSERT INTO item_saves (user_id, item_id) VALUES ($1, $2)
           ON CONFLICT (user_id, item_id) DO UPDATE SET created_at = item_saves.created_at
           RETURNING created_at""", user_id, item_id)
    return saved_at  # type: ignore[no-any-return]


async def unsave(db: Database, user_id: uuid.UUID, item_id: uuid.UUID) -> bool:
    """Remove a bookmark; True if there was one."""
    result = await db.pool.execute(
        "DELETE FROM item_saves WHERE user_id = $1 AND item_id = $2", user_id, item_id)
    return bool(result != "DELETE 0")


async def saved_page(db: Database, viewer: uuid.UUID, after: tuple[datetime, uuid.UUID] | None,
                     limit: int, now: datetime | None = None) -> list[tuple[datetime, Item]]:
    """The viewer's saved items they may still see, newest saved first, with when each was saved.

    `after` is the (saved_at, item id) of the previous page's last row (a handlers.pagination
    Position's at and id); with `now`, stories that expired by then are left out (but the
    viewer's own), and so are the comments and replies of such stories (but the viewer's own,
    and those under the viewer's own stories). Deleted items stay, as tombstones.
    """
    rows = await db.pool.fetch(
        f"""SELECT s.created_at AS saved_at, {ITEM_COLUMNS}
            FROM item_saves s JOIN items i ON i.id = s.item_id
            WHERE s.user_id = $1
              AND ($2::timestamptz IS NULL OR (s.created_at, s.item_id) < ($2, $3))
              AND ($5::timestamptz IS NULL OR i.expires_at IS NULL OR i.expires_at > $5
                   OR i.author_id = $1)
              AND ($5::timestamptz IS NULL OR i.root_id IS NULL OR i.author_id = $1
                   OR NOT EXISTS (SELECT 1 FROM items r WHERE r.id = i.root_id
                                  AND r.expires_at <= $5 AND r.author_id <> $1))
              AND hs_can_see($1, i)
            ORDER BY s.created_at DESC, s.item_id DESC
            LIMIT $4""",
        viewer, after[0] if after else None, after[1] if after else None, limit, now)
    return [(r["saved_at"], item_from_row(r)) for r in rows]


async def clique_is_private(db: Database, clique_id: uuid.UUID) -> bool:
    """Whether a clique is private (its items are not shared)."""
    return bool(await db.pool.fetchval("SELECT is_private FROM cliques WHERE id = $1", clique_id))


# -- quotes ------------------------------------------------------------------------------


async def detach_quote(db: Database, quoting_id: uuid.UUID) -> tuple[Item, int] | None:
    """Mark a quote detached; the quoting item and the live version (None if it is gone)."""
    row = await db.pool.fetchrow(
        f"""UPDATE items i SET quote_detached = true WHERE i.id = $1
            RETURNING {ITEM_COLUMNS}, {VERSION} AS version""", quoting_id)
    return None if row is None else (item_from_row(row), int(row["version"]))
