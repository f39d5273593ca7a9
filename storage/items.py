"""Named queries on items (posts, comments, replies, notices, ...): reads filtered by hs_can_see.

Visibility lives in SQL (hs_can_see, storage/migrations/0008_social.sql); every read a
viewer makes goes through it. Writes take a connection so callers keep counters, media,
mentions and tags in the transaction that changes what they describe.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from storage.db import Database
from storage.users import UserBrief

ITEM_COLUMNS = """i.id, i.kind, i.author_id, i.parent_id, i.root_id, i.quoted_id, i.shared_id,
    i.clique_id, i.body, i.visibility, i.quote_policy, i.quote_detached, i.allow_comments,
    i.reply_count, i.share_count, i.quote_count, i.reaction_count, i.reaction_counts,
    i.view_count, i.data, i.created_at, i.edited_at, i.deleted_at, i.expires_at"""


@dataclass(frozen=True)
class Item:
    """One row of items, as clients need it (the idempotency key stays inside storage)."""

    id: uuid.UUID
    kind: str
    author_id: uuid.UUID
    parent_id: uuid.UUID | None
    root_id: uuid.UUID | None
    quoted_id: uuid.UUID | None
    shared_id: uuid.UUID | None
    clique_id: uuid.UUID | None
    body: str | None
    visibility: str
    quote_policy: str
    quote_detached: bool
    allow_comments: bool
    reply_count: int
    share_count: int
    quote_count: int
    reaction_count: int
    reaction_counts: dict[str, int]
    view_count: int
    data: dict[str, Any]
    created_at: datetime
    edited_at: datetime | None
    deleted_at: datetime | None
    expires_at: datetime | None

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def thread_root(self) -> uuid.UUID:
        """The id of the thread's top item: its root, or itself when top-level."""
        return self.root_id or self.id


def item_from_row(row: asyncpg.Record | dict[str, Any]) -> Item:
    """An Item from a row selected with ITEM_COLUMNS (extra columns are ignored)."""
    values = dict(row)
    return Item(**{name: values[name] for name in Item.__dataclass_fields__})


@dataclass(frozen=True)
class NewItem:
    """What an insert needs; children carry their root's audience (see handlers/items.py)."""

    kind: str
    author_id: uuid.UUID
    body: str | None
    parent_id: uuid.UUID | None = None
    root_id: uuid.UUID | None = None
    quoted_id: uuid.UUID | None = None
    clique_id: uuid.UUID | None = None
    visibility: str = "public"
    quote_policy: str = "public"
    allow_comments: bool = True
    idempotency_key: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ItemMedia:
    item_id: uuid.UUID
    position: int
    id: uuid.UUID
    kind: str
    content_type: str
    status: str
    width: int | None
    height: int | None


@dataclass(frozen=True)
class ViewerState:
    """What one viewer has done to one item, and the item's mentions and tags."""

    item_id: uuid.UUID
    my_reaction: str | None
    saved: bool
    shared: bool
    mentions: list[uuid.UUID]
    tags: list[str]


@dataclass(frozen=True)
class Edit:
    """An earlier version of an item: its body until edited_at replaced it."""

    id: int
    body: str | None
    edited_at: datetime


# -- reads -------------------------------------------------------------------------------


async def get(db: Database | asyncpg.Connection, item_id: uuid.UUID) -> Item | None:
    """An item whoever asks (no visibility check): for writes that checked visibility first."""
    conn = db.pool if isinstance(db, Database) else db
    row = await conn.fetchrow(f"SELECT {ITEM_COLUMNS} FROM items i WHERE i.id = $1", item_id)
    return None if row is None else item_from_row(row)


async def get_visible(db: Database, viewer: uuid.UUID, item_id: uuid.UUID) -> Item | None:
    """The item if `viewer` may see it (hs_can_see), tombstones included; None otherwise."""
    row = await db.pool.fetchrow(
        f"SELECT {ITEM_COLUMNS} FROM items i WHERE i.id = $2 AND hs_can_see($1, i)",
        viewer, item_id)
    return None if row is None else item_from_row(row)


async def get_live(db: Database, viewer: uuid.UUID, item_id: uuid.UUID,
                   now: datetime) -> Item | None:
    """The item if `viewer` may see it and it has not expired, nor has its thread's root.

    A story's comments and replies go with the story: once it expires they are gone for
    everyone but the story's author and each answer's own author.
    """
    row = await db.pool.fetchrow(
        f"""SELECT {ITEM_COLUMNS} FROM items i
            WHERE i.id = $2 AND hs_can_see($1, i)
              AND (i.author_id = $1 OR i.expires_at IS NULL OR i.expires_at > $3)
              AND (i.root_id IS NULL OR i.author_id = $1 OR NOT EXISTS (
                   SELECT 1 FROM items r WHERE r.id = i.root_id AND r.expires_at <= $3
                   AND r.author_id <> $1))""",
        viewer, item_id, now)
    return None if row is None else item_from_row(row)


async def get_locked(conn: asyncpg.Connection, item_id: uuid.UUID) -> Item | None:
    """The item, locked for update until the transaction ends."""
    row = await conn.fetchrow(
        f"SELECT {ITEM_COLUMNS} FROM items i WHERE i.id = $1 FOR UPDATE", item_id)
    return None if row is None else item_from_row(row)


async def visible_among(
    db: Database, viewer: uuid.UUID, item_ids: Sequence[uuid.UUID]
) -> tuple[dict[uuid.UUID, Item], set[uuid.UUID]]:
    """Of these ids: the items the viewer may see, and the ids that exist but are hidden."""
    rows = await db.pool.fetch(
        f"""SELECT {ITEM_COLUMNS}, hs_can_see($1, i) AS visible
            FROM items i WHERE i.id = ANY($2::uuid[])""",
        viewer, list(item_ids))
    seen = {r["id"]: item_from_row(r) for r in rows if r["visible"]}
    return seen, {r["id"] for r in rows if not r["visible"]}


# Answers one page request reads at most, hidden ones included: a viewer who blocked a
# prolific commenter gets a short (even empty) page with a next cursor, not an unbounded scan.
CHILDREN_SCAN_MAX = 400


async def children_page(
    db: Database, viewer: uuid.UUID, parent_id: uuid.UUID,
    after: tuple[datetime, uuid.UUID] | None, limit: int,
) -> tuple[list[Item], tuple[datetime, uuid.UUID] | None]:
    """Direct children of an item the viewer may see, oldest first, strictly after `after`,
    and the (created_at, id) the next page starts after (None: no more).

    Tombstones stay in place (their replies hang under them). The walk reads at most
    CHILDREN_SCAN_MAX answers in order and checks visibility only until the page is full.
    """
    rows = await db.pool.fetch(
        f"""SELECT x.* FROM (
                SELECT {ITEM_COLUMNS}, c.n, hs_can_see($1, i) AS visible
                FROM (SELECT b.id, row_number() OVER (ORDER BY b.created_at, b.id) AS n
                      FROM items b
                      WHERE b.parent_id = $2
                        AND ($3::timestamptz IS NULL OR (b.created_at, b.id) > ($3, $4::uuid))
                      ORDER BY b.created_at, b.id LIMIT $5) c
                JOIN items i ON i.id = c.id
                ORDER BY i.created_at, i.id
                OFFSET 0) x
            WHERE x.visible OR x.n = $5
            LIMIT $6""",
        viewer, parent_id, after[0] if after else None, after[1] if after else None,
        CHILDREN_SCAN_MAX, limit + 1)
    visible = [item_from_row(r) for r in rows if r["visible"]]
    if len(visible) > limit:
        page = visible[:limit]
        return page, (page[-1].created_at, page[-1].id)
    last = next((r for r in rows if r["n"] == CHILDREN_SCAN_MAX), None)
    if last is not None:
        # The scan cap was reached with the page not full: go on after what was read.
        return visible, (last["created_at"], last["id"])
    return visible, None


async def created_with_key(db: Database | asyncpg.Connection, author_id: uuid.UUID,
                           key: str) -> tuple[uuid.UUID, str] | None:
    """The (id, kind) of the item this author created with this idempotency key, if any.

    One key space per author for every kind (posts, stories, slides, ...).
    """
    executor = db.pool if isinstance(db, Database) else db
    row = await executor.fetchrow(
        "SELECT id, kind FROM items WHERE author_id = $1 AND idempotency_key = $2",
        author_id, key)
    return None if row is None else (row["id"], row["kind"])


async def by_idempotency_key(db: Database, author_id: uuid.UUID, key: str) -> Item | None:
    row = await db.pool.fetchrow(
        f"SELECT {ITEM_COLUMNS} FROM items i WHERE i.author_id = $1 AND i.idempotency_key = $2",
        author_id, key)
    return None if row is None else item_from_row(row)


async def media_count(conn: asyncpg.Connection, item_id: uuid.UUID) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM item_media WHERE item_id = $1", item_id))


async def media_ids_of(db: Database, item_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await db.pool.fetch(
        "SELECT media_id FROM item_media WHERE item_id = $1 ORDER BY position", item_id)
    return [r["media_id"] for r in rows]


async def may_post_in_clique(
    db: Database | asyncpg.Connection, clique_id: uuid.UUID, user_id: uuid.UUID
) -> bool:
    """A live clique the user is a member of and not banned from."""
    conn = db.pool if isinstance(db, Database) else db
    return bool(await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM clique_members m JOIN cliques c ON c.id = m.clique_id
                          WHERE m.clique_id = $1 AND m.user_id = $2 AND c.deleted_at IS NULL)
              AND NOT EXISTS (SELECT 1 FROM clique_bans b
                              WHERE b.clique_id = $1 AND b.user_id = $2)""",
        clique_id, user_id))


async def follows_or_friend(db: Database, viewer: uuid.UUID, author: uuid.UUID) -> bool:
    """The viewer follows the author or is their friend (a quote_policy of 'followers')."""
    return bool(await db.pool.fetchval(
        """SELECT EXISTS (SELECT 1 FROM follows WHERE follower_id = $1 AND followee_id = $2)
               OR EXISTS (SELECT 1 FROM friendships WHERE user_id = $2 AND friend_id = $1)""",
        viewer, author))


async def users_named(
    db: Database | asyncpg.Connection, usernames: Sequence[str]
) -> dict[str, uuid.UUID]:
    """Live users by lower-cased username, for mentions."""
    conn = db.pool if isinstance(db, Database) else db
    rows = await conn.fetch(
        """SELECT id, lower(username) AS name FROM users
           WHERE lower(username) = ANY($1::text[]) AND deleted_at IS NULL""",
        list(usernames))
    return {r["name"]: r["id"] for r in rows}


async def who_can_see(
    db: Database, item_id: uuid.UUID, user_ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    """Those of user_ids who may see the item (who may be notified about it)."""
    rows = await db.pool.fetch(
        """SELECT u FROM items i, unnest($2::uuid[]) AS u
           WHERE i.id = $1 AND hs_can_see(u, i)""",
        item_id, list(user_ids))
    return {r["u"] for r in rows}


async def edits_page(
    db: Database, item_id: uuid.UUID, before_id: int | None, limit: int
) -> list[Edit]:
    """Earlier versions of an item, newest first, with ids below before_id."""
    rows = await db.pool.fetch(
        """SELECT id, body, edited_at FROM item_edits
           WHERE item_id = $1 AND ($2::bigint IS NULL OR id < $2)
           ORDER BY id DESC LIMIT $3""",
        item_id, before_id, limit)
    return [Edit(r["id"], r["body"], r["edited_at"]) for r in rows]


# -- hydration (a whole page in a constant number of queries) ----------------------------


async def authors(db: Database, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, UserBrief]:
    rows = await db.pool.fetch(
        """SELECT id, username, display_name, avatar_url FROM users WHERE id = ANY($1::uuid[])""",
        list(set(user_ids)))
    return {r["id"]: UserBrief(**dict(r)) for r in rows}


async def media_of(db: Database, item_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[ItemMedia]]:
    rows = await db.pool.fetch(
        """SELECT im.item_id, im.position, m.id, m.kind, m.content_type, m.status, m.width,
                  m.height
           FROM item_media im JOIN media m ON m.id = im.media_id
           WHERE im.item_id = ANY($1::uuid[]) ORDER BY im.item_id, im.position""",
        list(set(item_ids)))
    found: dict[uuid.UUID, list[ItemMedia]] = {}
    for r in rows:
        found.setdefault(r["item_id"], []).append(ItemMedia(**dict(r)))
    return found


async def viewer_states(
    db: Database, viewer: uuid.UUID, item_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, ViewerState]:
    """The viewer's reaction, save and share of each item, with each item's mentions and tags."""
    rows = await db.pool.fetch(
        """SELECT t.id AS item_id,
                  (SELECT r.kind FROM item_reactions r
                   WHERE r.item_id = t.id AND r.user_id = $1) AS my_reaction,
                  EXISTS (SELECT 1 FROM item_saves s
                          WHERE s.item_id = t.id AND s.user_id = $1) AS saved,
                  EXISTS (SELECT 1 FROM items sh WHERE sh.kind = 'share' AND sh.author_id = $1
                          AND sh.shared_id = t.id) AS shared,
                  ARRAY(SELECT m.user_id FROM item_mentions m WHERE m.item_id = t.id
                        ORDER BY m.user_id) AS mentions,
                  ARRAY(SELECT g.tag FROM item_tags g WHERE g.item_id = t.id
                        ORDER BY g.tag) AS tags
           FROM unnest($2::uuid[]) AS t(id)""",
        viewer, list(set(item_ids)))
    return {r["item_id"]: ViewerState(r["item_id"], r["my_reaction"], r["saved"], r["shared"],
                                      list(r["mentions"]), list(r["tags"])) for r in rows}


# -- writes ------------------------------------------------------------------------------


async def insert(conn: asyncpg.Connection, new: NewItem) -> Item | None:
    """Insert an item; None if the author already has one under this idempotency key."""
    row = await conn.fetchrow(
        f"""INSERT INTO items AS i (kind, author_id, body, parent_id, root_id, quoted_id,
                                    clique_id, visibility, quote_policy, allow_comments,
                                    idempotency_key, data)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            ON CONFLICT (author_id, idempotency_key) WHERE idempotency_key IS NOT NULL
            DO NOTHING
            RETURNING {ITEM_COLUMNS}""",
        new.kind, new.author_id, new.body, new.parent_id, new.root_id, new.quoted_id,
        new.clique_id, new.visibility, new.quote_policy, new.allow_comments,
        new.idempotency_key, new.data)
    return None if row is None else item_from_row(row)


async def attach_media(conn: asyncpg.Connection, item_id: uuid.UUID,
                       media_ids: Sequence[uuid.UUID]) -> None:
    await conn.execute(
        """INSERT INTO item_media (item_id, media_id, position)
           SELECT $1, t.media_id, t.position - 1
           FROM unnest($2::uuid[]) WITH ORDINALITY AS t(media_id, position)""",
        item_id, list(media_ids))


async def add_reply(conn: asyncpg.Connection, parent_id: uuid.UUID) -> int:
    """Count one more direct child of the parent; its new reply_count."""
    return int(await conn.fetchval(
        "UPDATE items SET reply_count = reply_count + 1 WHERE id = $1 RETURNING reply_count",
        parent_id))


async def add_quote(conn: asyncpg.Connection, quoted_id: uuid.UUID) -> None:
    await conn.execute("UPDATE items SET quote_count = quote_count + 1 WHERE id = $1", quoted_id)


async def set_mentions(conn: asyncpg.Connection, item_id: uuid.UUID,
                       user_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    """Make the item's mentions exactly these users; returns the ones that are new."""
    await conn.execute(
        "DELETE FROM item_mentions WHERE item_id = $1 AND NOT user_id = ANY($2::uuid[])",
        item_id, list(user_ids))
    rows = await conn.fetch(
        """INSERT INTO item_mentions (item_id, user_id) SELECT $1, u FROM unnest($2::uuid[]) AS u
           ON CONFLICT DO NOTHING RETURNING user_id""",
        item_id, list(user_ids))
    return [r["user_id"] for r in rows]


async def set_tags(conn: asyncpg.Connection, item_id: uuid.UUID, tags: Sequence[str],
                   created_at: datetime) -> None:
    """Make the item's hashtags exactly these (lower-cased, without '#')."""
    await conn.execute("DELETE FROM item_tags WHERE item_id = $1 AND NOT tag = ANY($2::text[])",
                       item_id, list(tags))
    await conn.execute(
        """INSERT INTO item_tags (tag, item_id, created_at) SELECT t, $1, $3
           FROM unnest($2::text[]) AS t ON CONFLICT DO NOTHING""",
        item_id, list(tags), created_at)


async def update(conn: asyncpg.Connection, item_id: uuid.UUID, changes: dict[str, Any],
                 now: datetime) -> Item:
    """Apply changes to an item; a new body keeps the old one in item_edits and sets edited_at."""
    allowed = {"body", "visibility", "allow_comments", "quote_policy"}
    if not changes.keys() <= allowed:
        raise ValueError(f"cannot update {sorted(changes.keys() - allowed)}")
    if "body" in changes:
        await conn.execute(
            "INSERT INTO item_edits (item_id, body, edited_at) SELECT id, body, $2 FROM items "
            "WHERE id = $1", item_id, now)
        changes = {**changes, "edited_at": now}
    names = list(changes)
    assignments = ", ".join(f"{name} = ${n}" for n, name in enumerate(names, start=2))
    row = await conn.fetchrow(
        f"UPDATE items AS i SET {assignments} WHERE i.id = $1 RETURNING {ITEM_COLUMNS}",
        item_id, *(changes[name] for name in names))
    return item_from_row(row)


async def tombstone(conn: asyncpg.Connection, item_id: uuid.UUID) -> None:
    """Delete an item, keeping its row so its children stay reachable; idempotent.

    Clears the body, media, mentions, tags and edit history, drops its quote (the
    quoted item's quote_count goes down). reply_count keeps counting tombstones:
    they stay in their thread, in place.
    """
    row = await conn.fetchrow(
        "SELECT quoted_id, deleted_at FROM items WHERE id = $1 FOR UPDATE", item_id)
    if row is None or row["deleted_at"] is not None:
        return
    await conn.execute(
        "UPDATE items SET deleted_at = now(), body = NULL, quoted_id = NULL WHERE id = $1",
        item_id)
    await conn.execute("DELETE FROM item_media WHERE item_id = $1", item_id)
    await conn.execute("DELETE FROM item_mentions WHERE item_id = $1", item_id)
    await conn.execute("DELETE FROM item_tags WHERE item_id = $1", item_id)
    await conn.execute("DELETE FROM item_edits WHERE item_id = $1", item_id)
    if row["quoted_id"] is not None:
        await conn.execute(
            "UPDATE items SET quote_count = greatest(quote_count - 1, 0) WHERE id = $1",
            row["quoted_id"])
