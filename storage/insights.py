"""Owner insights: the SQL behind insight.* (counts, uniques, breakdowns per subject).

Counts of past UTC days come from `analytics_rollup_day` (kept forever); today's come from
the live counters (channels/analytics_live.py) or, without them, from the minute roll-ups,
which the worker updates in the same transaction as the raw rows. Anything that needs a
person (unique reach, a breakdown's distinct people, a retention curve) reads the raw
events, so it covers the raw retention only (HOTSPOT_ANALYTICS_RETENTION_DAYS).
A visitor is the user id, else `ip:` + the daily-salted IP hash, as in the live counters.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from storage.db import Database

VISITOR = "coalesce(user_id::text, 'ip:' || ip_hash)"


@dataclass(frozen=True)
class Group:
    """One row of a breakdown: how many events and how many distinct people behind them."""

    key: str
    count: int
    people: int


@dataclass(frozen=True)
class Owned:
    """A subject's kind and author, to decide who may read its insights."""

    id: uuid.UUID
    kind: str
    author_id: uuid.UUID
    created_at: datetime


async def owned_item(db: Database, item_id: uuid.UUID) -> Owned | None:
    row = await db.pool.fetchrow(
        "SELECT id, kind, author_id, created_at FROM items WHERE id = $1 AND deleted_at IS NULL",
        item_id)
    return None if row is None else Owned(**dict(row))


async def past_counts(db: Database, subject_id: uuid.UUID, names: Sequence[str],
                      since: date, today: date) -> dict[str, int]:
    """Events per name about the subject on whole UTC days [since, today), from day roll-ups."""
    rows = await db.pool.fetch(
        """SELECT name, sum(count)::bigint AS n FROM analytics_rollup_day
           WHERE subject_id = $1 AND name = ANY($2::text[])
             AND bucket >= $3::date AND bucket < $4::date
           GROUP BY name""", subject_id, list(names), since, today)
    return {row["name"]: int(row["n"]) for row in rows}


async def today_counts(db: Database, subject_id: uuid.UUID, names: Sequence[str],
                       today: date) -> dict[str, int]:
    """Today's events per name from the minute roll-ups (when no live counters run)."""
    rows = await db.pool.fetch(
        """SELECT name, sum(count)::bigint AS n FROM analytics_rollup_minute
           WHERE subject_id = $1 AND name = ANY($2::text[]) AND bucket >= $3::date
           GROUP BY name""", subject_id, list(names), today)
    return {row["name"]: int(row["n"]) for row in rows}


async def reach(db: Database, subject_ids: Sequence[uuid.UUID], names: Sequence[str],
                since: datetime) -> int:
    """Distinct visitors who did any of these events about any of the subjects since then."""
    return int(await db.pool.fetchval(
        f"""SELECT count(DISTINCT {VISITOR}) FROM analytics_events
            WHERE subject_id = ANY($1::uuid[]) AND name = ANY($2::text[])
              AND occurred_at >= $3""", list(subject_ids), list(names), since) or 0)


async def by_prop(db: Database, subject_id: uuid.UUID, name: str, prop: str,
                  since: datetime) -> list[Group]:
    """Events named `name` about the subject grouped by one of their props."""
    rows = await db.pool.fetch(
        f"""SELECT props->>$3 AS key, count(*) AS n, count(DISTINCT {VISITOR}) AS people
            FROM analytics_events
            WHERE subject_id = $1 AND name = $2 AND occurred_at >= $4 AND props ? $3
            GROUP BY 1 ORDER BY 1""", subject_id, name, prop, since)
    return [Group(str(r["key"]), int(r["n"]), int(r["people"])) for r in rows]


async def by_name(db: Database, subject_id: uuid.UUID, names: Sequence[str],
                  since: datetime) -> dict[str, Group]:
    """Events and distinct people per name about the subject."""
    rows = await db.pool.fetch(
        f"""SELECT name, count(*) AS n, count(DISTINCT {VISITOR}) AS people
            FROM analytics_events
            WHERE subject_id = $1 AND name = ANY($2::text[]) AND occurred_at >= $3
            GROUP BY name""", subject_id, list(names), since)
    return {r["name"]: Group(r["name"], int(r["n"]), int(r["people"])) for r in rows}


@dataclass(frozen=True)
class Watch:
    """Per viewer of a slide: the furthest quartile reached and the longest watch."""

    quartile: int
    watch_ms: int


async def slide_watches(db: Database, slide_id: uuid.UUID, since: datetime) -> list[Watch]:
    rows = await db.pool.fetch(
        f"""SELECT max((props->>'quartile')::int) AS q, max((props->>'watch_ms')::bigint) AS ms
            FROM analytics_events
            WHERE subject_id = $1 AND name = 'slide.watch' AND occurred_at >= $2
            GROUP BY {VISITOR}""", slide_id, since)
    return [Watch(int(r["q"]), int(r["ms"])) for r in rows]


async def followers_per_day(db: Database, user_id: uuid.UUID, since: date) -> dict[date, int]:
    """New followers per UTC day (follows still standing: an unfollow removes its row)."""
    rows = await db.pool.fetch(
        """SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n FROM follows
           WHERE followee_id = $1 AND created_at >= $2::date GROUP BY 1""", user_id, since)
    return {r["day"]: int(r["n"]) for r in rows}


async def top_items(db: Database, author_id: uuid.UUID, since: date,
                    limit: int) -> list[tuple[uuid.UUID, int]]:
    """The author's items with the most impressions and views since then (day roll-ups +
    today's minute roll-ups, so today counts)."""
    rows = await db.pool.fetch(
        """WITH counted AS (
               SELECT subject_id, count FROM analytics_rollup_day
               WHERE bucket >= $2::date AND bucket < (now() AT TIME ZONE 'UTC')::date
                 AND name IN ('item.impression', 'story.viewed', 'slide.viewed')
               UNION ALL
               SELECT subject_id, count FROM analytics_rollup_minute
               WHERE bucket >= (now() AT TIME ZONE 'UTC')::date
                 AND name IN ('item.impression', 'story.viewed', 'slide.viewed'))
           SELECT c.subject_id, sum(c.count)::bigint AS n FROM counted c
           JOIN items i ON i.id = c.subject_id
           WHERE i.author_id = $1 AND i.deleted_at IS NULL
           GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $3""", author_id, since, limit)
    return [(r["subject_id"], int(r["n"])) for r in rows]


async def item_ids_of(db: Database, author_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await db.pool.fetch(
        "SELECT id FROM items WHERE author_id = $1 AND deleted_at IS NULL", author_id)
    return [r["id"] for r in rows]


@dataclass(frozen=True)
class CliqueDay:
    day: date
    posts: int
    joins: int


async def clique_days(db: Database, clique_id: uuid.UUID, since: date) -> list[CliqueDay]:
    """Posts (top-level items) and joins of members still in the clique, per UTC day."""
    rows = await db.pool.fetch(
        """WITH days AS (SELECT generate_series($2::date, (now() AT TIME ZONE 'UTC')::date,
                                                '1 day')::date AS day)
           SELECT d.day,
             (SELECT count(*) FROM items i WHERE i.clique_id = $1 AND i.parent_id IS NULL
                AND i.deleted_at IS NULL AND (i.created_at AT TIME ZONE 'UTC')::date = d.day)
               AS posts,
             (SELECT count(*) FROM clique_members m WHERE m.clique_id = $1
                AND (m.joined_at AT TIME ZONE 'UTC')::date = d.day) AS joins
           FROM days d ORDER BY d.day""", clique_id, since)
    return [CliqueDay(r["day"], int(r["posts"]), int(r["joins"])) for r in rows]


async def clique_active_members(db: Database, clique_id: uuid.UUID, since: date) -> int:
    """Members who posted, commented or replied in the clique since then."""
    return int(await db.pool.fetchval(
        """SELECT count(DISTINCT i.author_id) FROM items i
           JOIN clique_members m ON m.clique_id = i.clique_id AND m.user_id = i.author_id
           WHERE i.clique_id = $1 AND i.deleted_at IS NULL AND i.created_at >= $2::date""",
        clique_id, since) or 0)


async def story_replies(db: Database, story_id: uuid.UUID) -> Group:
    """Direct-message replies to a story (story.reply) and how many people sent them."""
    row = await db.pool.fetchrow(
        """SELECT count(*) AS n, count(DISTINCT sender_id) AS people FROM messages
           WHERE story_id = $1""", story_id)
    return Group("replies", int(row["n"]), int(row["people"]))


async def reply_people(db: Database, item_id: uuid.UUID) -> Group:
    """Comments and replies under the item (not deleted) and how many people wrote them."""
    row = await db.pool.fetchrow(
        """SELECT count(*) AS n, count(DISTINCT author_id) AS people FROM items
           WHERE parent_id = $1 AND deleted_at IS NULL""", item_id)
    return Group("replies", int(row["n"]), int(row["people"]))
