"""Feed reads: the home feed's fan-out-on-read merge and the single-range item lists.

Every list reads a batch of candidate positions in list order, then walks them joining
each to its item and checking the viewer's right to see it (hs_can_see, mutes, expiry)
until it has enough visible ones: visibility, the costly part, is evaluated only as far
as the page needs. `scan` reads further batches while a page is not full, until the list
ends or SCAN_ROUNDS batches were read. The home feed's candidates come from a bounded
merge over the viewer's sources, each an index range on items_feed_author or
items_feed_clique (0012_feeds.sql); docs/feeds.md explains it.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from storage.db import Database
from storage.items import ITEM_COLUMNS, Item, item_from_row

# What a list has already shown: the sort timestamp and id of its last row.
Mark = tuple[datetime, uuid.UUID]

# Top-level items a feed shows; 0012's partial indexes hold exactly these rows, and the
# queries repeat this predicate verbatim so the planner can use them.
FEED_ROWS = """i.root_id IS NULL AND i.deleted_at IS NULL
              AND i.kind IN ('post', 'notice', 'share', 'slide')"""
# The home feed merges the most recent follows and friendships (docs/limits.md)...
HOME_SOURCES_MAX = 2000
# ... and the cliques the viewer most recently joined or followed.
HOME_CLIQUES_MAX = 500
# Batches read per page before giving up on filling it (then next_cursor says where to
# go on), and their sizes: the first a page and BATCH_SLACK more, then doubling. Spare
# candidates cost an index entry each, not a visibility check.
SCAN_ROUNDS = 6
BATCH_SLACK = 20
BATCH_MAX = 400
# Row comparisons need bounds: "no cursor yet" is after the end of time.
END: Mark = (datetime.max.replace(tzinfo=UTC), uuid.UUID(int=(1 << 128) - 1))
NOT_MUTED = """NOT EXISTS (SELECT 1 FROM user_mutes mu WHERE mu.muter_id = $1
                  AND mu.muted_id = i.author_id AND (mu.until IS NULL OR mu.until > $4))"""
NOT_EXPIRED = "(i.expires_at IS NULL OR i.expires_at > $4)"
# A story's comments and replies leave lists with the story.
ROOT_NOT_EXPIRED = """(i.root_id IS NULL OR NOT EXISTS (
    SELECT 1 FROM items r WHERE r.id = i.root_id AND r.expires_at <= $4))"""


def lazy_sql(candidates: str, visible: str) -> str:
    """Walk a batch of candidates (`at`, `id`, newest first) and keep the visible ones.

    Parameters: $1 viewer, $2/$3 the position to read before, $4 now, $5 batch size,
    $6 how many visible rows are wanted. Returns the visible rows (at most $6), plus the
    batch's last candidate (n = $5) when the walk reaches it, visible or not: where the
    next batch starts. OFFSET 0 keeps `visible` computed once per row, and the walk in
    position order lets LIMIT stop it as soon as enough rows are visible.
    """
    return f"""
SELECT x.* FROM (
    SELECT {ITEM_COLUMNS}, c.at, c.n, ({visible}) AS visible
    FROM (SELECT b.at, b.id, row_number() OVER (ORDER BY b.at DESC, b.id DESC) AS n
          FROM ({candidates}) b) c
    JOIN items i ON i.id = c.id
    ORDER BY c.at DESC, c.id DESC
    OFFSET 0) x
WHERE x.visible OR x.n = $5
LIMIT $6
"""


@dataclass(frozen=True)
class Candidate:
    """A row a list would show in this position, and whether this viewer may see it."""

    item: Item
    at: datetime
    visible: bool
    last: bool  # the batch's last candidate: the next batch starts after it

    @property
    def mark(self) -> Mark:
        return (self.at, self.item.id)


@dataclass(frozen=True)
class FeedPage:
    """Visible items in list order, and where the next page starts (None: the list ended)."""

    items: list[Item]
    next: Mark | None


# (position to read before, batch size, visible rows wanted) -> candidates
Fetch = Callable[[Mark, int, int], Awaitable[list["Candidate"]]]


async def scan(fetch: Fetch, after: Mark | None, limit: int) -> FeedPage:
    """Read batches until `limit` visible items and one more are found, or the list ends."""
    found: list[Candidate] = []
    position = after or END
    batch = limit + 1 + BATCH_SLACK
    for _ in range(SCAN_ROUNDS):
        rows = await fetch(position, batch, limit + 1 - len(found))
        found.extend(c for c in rows if c.visible)
        if len(found) > limit:
            page = found[:limit]
            return FeedPage([c.item for c in page], page[-1].mark)
        last = next((c for c in rows if c.last), None)
        if last is None:
            # Fewer candidates than the batch: nothing more to read.
            return FeedPage([c.item for c in found], None)
        position = last.mark
        batch = min(batch * 2, BATCH_MAX)
    # Mostly hidden rows so far: a short page, and the next one starts after what was read.
    return FeedPage([c.item for c in found], position)


def _candidates(rows: list[asyncpg.Record], batch: int) -> list[Candidate]:
    return [Candidate(item_from_row(r), r["at"], r["visible"], r["n"] == batch) for r in rows]


# -- home --------------------------------------------------------------------------------

# $1 viewer, $2/$3 the position to read before, $4 now, $5 batch size, $6/$7 source caps.
# Params as lazy_sql, then $7 / $8 the source caps. heads: each source's newest row before
# the position. bound: the batch-th newest head; the batch newest rows overall cannot
# reach below it (those heads are `batch` distinct rows at or above it), so only sources
# whose head reaches it are read further, each from its head down to the bound.
HOME_CANDIDATES = f"""
WITH src AS (
    SELECT s.id FROM (
        (SELECT f.followee_id AS id, f.created_at FROM follows f WHERE f.follower_id = $1
         ORDER BY f.created_at DESC LIMIT $7)
        UNION ALL
        (SELECT f.friend_id, f.created_at FROM friendships f WHERE f.user_id = $1
         ORDER BY f.created_at DESC LIMIT $7)
    ) s
    WHERE NOT EXISTS (SELECT 1 FROM user_mutes mu WHERE mu.muter_id = $1 AND mu.muted_id = s.id
                      AND (mu.until IS NULL OR mu.until > $4))
    GROUP BY s.id ORDER BY max(s.created_at) DESC LIMIT $7
),
authors AS (SELECT id FROM src UNION ALL SELECT $1),
cq AS (
    SELECT s.id FROM (
        (SELECT m.clique_id AS id, m.joined_at AS at FROM clique_members m WHERE m.user_id = $1
         ORDER BY m.joined_at DESC LIMIT $8)
        UNION ALL
        (SELECT f.clique_id, f.created_at FROM clique_followers f WHERE f.user_id = $1
         ORDER BY f.created_at DESC LIMIT $8)
    ) s
    JOIN cliques c ON c.id = s.id AND c.deleted_at IS NULL
    WHERE NOT EXISTS (SELECT 1 FROM clique_bans b WHERE b.clique_id = s.id AND b.user_id = $1)
    GROUP BY s.id ORDER BY max(s.at) DESC LIMIT $8
),
heads AS (
    SELECT 'a' AS src_kind, a.id AS src, h.created_at, h.id
    FROM authors a CROSS JOIN LATERAL (
        SELECT i.created_at, i.id FROM items i
        WHERE i.author_id = a.id AND {FEED_ROWS} AND (i.created_at, i.id) < ($2, $3)
        ORDER BY i.created_at DESC, i.id DESC LIMIT 1) h
    UNION ALL
    SELECT 'c', q.id, h.created_at, h.id
    FROM cq q CROSS JOIN LATERAL (
        SELECT i.created_at, i.id FROM items i
        WHERE i.clique_id = q.id AND i.clique_id IS NOT NULL AND {FEED_ROWS}
          AND (i.created_at, i.id) < ($2, $3)
        ORDER BY i.created_at DESC, i.id DESC LIMIT 1) h
),
bound AS (
    SELECT coalesce(b.created_at, '-infinity') AS at,
           coalesce(b.id, '00000000-0000-0000-0000-000000000000') AS id
    FROM (VALUES (1)) one LEFT JOIN LATERAL (
        SELECT DISTINCT h.created_at, h.id FROM heads h
        ORDER BY h.created_at DESC, h.id DESC OFFSET $5 - 1 LIMIT 1) b ON true
),
cand AS (
    SELECT c.created_at, c.id
    FROM heads h CROSS JOIN bound CROSS JOIN LATERAL (
        SELECT i.created_at, i.id FROM items i
        WHERE i.author_id = h.src AND {FEED_ROWS}
          AND (i.created_at, i.id) < ($2, $3) AND (i.created_at, i.id) >= (bound.at, bound.id)
        ORDER BY i.created_at DESC, i.id DESC LIMIT $5) c
    WHERE h.src_kind = 'a' AND (h.created_at, h.id) >= (bound.at, bound.id)
    UNION
    SELECT c.created_at, c.id
    FROM heads h CROSS JOIN bound CROSS JOIN LATERAL (
        SELECT i.created_at, i.id FROM items i
        WHERE i.clique_id = h.src AND i.clique_id IS NOT NULL AND {FEED_ROWS}
          AND (i.created_at, i.id) < ($2, $3) AND (i.created_at, i.id) >= (bound.at, bound.id)
        ORDER BY i.created_at DESC, i.id DESC LIMIT $5) c
    WHERE h.src_kind = 'c' AND (h.created_at, h.id) >= (bound.at, bound.id)
)
SELECT created_at AS at, id FROM cand ORDER BY created_at DESC, id DESC LIMIT $5
"""
HOME_SQL = lazy_sql(HOME_CANDIDATES, f"{NOT_EXPIRED} AND {NOT_MUTED} AND hs_can_see($1, i)")


async def home(db: Database, viewer: uuid.UUID, after: Mark | None, limit: int,
               now: datetime) -> FeedPage:
    """The viewer's home feed, newest first: followed people, friends, self, their cliques."""
    async def fetch(position: Mark, batch: int, want: int) -> list[Candidate]:
        return _candidates(await db.pool.fetch(
            HOME_SQL, viewer, position[0], position[1], now, batch, want, HOME_SOURCES_MAX,
            HOME_CLIQUES_MAX), batch)
    return await scan(fetch, after, limit)


# -- one author, one clique, one tag ---------------------------------------------------------

USER_SQL = lazy_sql(f"""
    SELECT i.created_at AS at, i.id FROM items i
    WHERE i.author_id = $7 AND {FEED_ROWS} AND ($8::text IS NULL OR i.kind = $8)
      AND (i.created_at, i.id) < ($2, $3)
    ORDER BY i.created_at DESC, i.id DESC LIMIT $5""", f"{NOT_EXPIRED} AND hs_can_see($1, i)")


async def by_user(db: Database, viewer: uuid.UUID, user_id: uuid.UUID, kind: str | None,
                  after: Mark | None, limit: int, now: datetime) -> FeedPage:
    """A user's top-level items the viewer may see, newest first (mutes do not apply)."""
    async def fetch(position: Mark, batch: int, want: int) -> list[Candidate]:
        return _candidates(await db.pool.fetch(
            USER_SQL, viewer, position[0], position[1], now, batch, want, user_id, kind), batch)
    return await scan(fetch, after, limit)


CLIQUE_SQL = lazy_sql(f"""
    SELECT i.created_at AS at, i.id FROM items i
    WHERE i.clique_id = $7 AND i.clique_id IS NOT NULL AND {FEED_ROWS}
      AND (i.created_at, i.id) < ($2, $3)
    ORDER BY i.created_at DESC, i.id DESC LIMIT $5""",
    f"{NOT_EXPIRED} AND {NOT_MUTED} AND hs_can_see($1, i)")


async def by_clique(db: Database, viewer: uuid.UUID, clique_id: uuid.UUID, after: Mark | None,
                    limit: int, now: datetime) -> FeedPage:
    """A clique's top-level items the viewer may see, newest first, muted authors left out."""
    async def fetch(position: Mark, batch: int, want: int) -> list[Candidate]:
        return _candidates(await db.pool.fetch(
            CLIQUE_SQL, viewer, position[0], position[1], now, batch, want, clique_id), batch)
    return await scan(fetch, after, limit)


TAG_SQL = lazy_sql("""
    SELECT t.created_at AS at, t.item_id AS id FROM item_tags t
    WHERE t.tag = $7 AND (t.created_at, t.item_id) < ($2, $3)
    ORDER BY t.created_at DESC, t.item_id DESC LIMIT $5""",
    f"i.deleted_at IS NULL AND {NOT_EXPIRED} AND {ROOT_NOT_EXPIRED} AND {NOT_MUTED} "
    "AND hs_can_see($1, i)")


async def by_tag(db: Database, viewer: uuid.UUID, tag: str, after: Mark | None, limit: int,
                 now: datetime) -> FeedPage:
    """Items carrying a (normalised) tag that the viewer may see, newest first."""
    async def fetch(position: Mark, batch: int, want: int) -> list[Candidate]:
        return _candidates(await db.pool.fetch(
            TAG_SQL, viewer, position[0], position[1], now, batch, want, tag), batch)
    return await scan(fetch, after, limit)


# -- access checks -----------------------------------------------------------------------


@dataclass(frozen=True)
class UserAccess:
    exists: bool
    blocked: bool


async def user_access(db: Database, viewer: uuid.UUID, user_id: uuid.UUID) -> UserAccess:
    """Whether a live user exists, and whether viewer and user block each other."""
    row = await db.pool.fetchrow(
        "SELECT hs_blocked($1, u.id) AS blocked FROM users u WHERE u.id = $2 AND u.deleted_at IS NULL",
        viewer, user_id)
    return UserAccess(row is not None, bool(row and row["blocked"]))


async def may_read_clique(db: Database, viewer: uuid.UUID, clique_id: uuid.UUID) -> bool:
    """A live clique, public or with the viewer as a member, that has not banned the viewer."""
    return bool(await db.pool.fetchval(
        """SELECT EXISTS (
               SELECT 1 FROM cliques c
               WHERE c.id = $2 AND c.deleted_at IS NULL
                 AND NOT EXISTS (SELECT 1 FROM clique_bans b
                                 WHERE b.clique_id = c.id AND b.user_id = $1)
                 AND (NOT c.is_private OR EXISTS (SELECT 1 FROM clique_members m
                                                  WHERE m.clique_id = c.id AND m.user_id = $1)))""",
        viewer, clique_id))
