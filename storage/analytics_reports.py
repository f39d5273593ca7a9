"""Admin reports over the analytics tables: active users, sign-up cohorts, funnel, activity.

Two sources, on purpose:

- counts of events per day (messages, items, sign-ups) come from `analytics_rollup_day`,
  which is kept forever and is small (one row per day, name and subject);
- anything that needs *distinct people* (DAU/WAU/MAU, cohorts, the funnel) comes from the
  raw `analytics_events`, because the roll-ups hold no user id. Raw partitions are
  dropped after the retention (`HOTSPOT_ANALYTICS_RETENTION_DAYS`), so these figures only
  exist for days within it; callers pass the cutoff and get nothing older.

Every query bounds `occurred_at`, so PostgreSQL reads only the partitions in the window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from storage.db import Database

SIGNED_UP = "user.signed_up"
ITEM_CREATED = "item.created"
MESSAGE_SENT = "message.sent"


def midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)


def week_start(day: date) -> date:
    """The Monday of the ISO week holding `day` (cohorts are ISO weeks, UTC)."""
    return day - timedelta(days=day.weekday())


async def newest_event_minute(db: Database) -> datetime | None:
    """The UTC minute of the newest stored event (the minute roll-up's key leads with it)."""
    value: datetime | None = await db.pool.fetchval(
        "SELECT max(bucket) FROM analytics_rollup_minute")
    return value


async def daily_active_users(db: Database, first: date, last: date) -> dict[date, int]:
    """Distinct users with any event, per UTC day in [first, last] (raw events)."""
    rows = await db.pool.fetch(
        """SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day, count(DISTINCT user_id) AS n
           FROM analytics_events
           WHERE occurred_at >= $1 AND occurred_at < $2 AND user_id IS NOT NULL
           GROUP BY 1""", midnight(first), midnight(last + timedelta(days=1)))
    return {row["day"]: row["n"] for row in rows}


async def active_users(db: Database, first: date, last: date) -> int:
    """Distinct users with any event over the UTC days [first, last] (WAU, MAU)."""
    count: int = await db.pool.fetchval(
        """SELECT count(DISTINCT user_id) FROM analytics_events
           WHERE occurred_at >= $1 AND occurred_at < $2 AND user_id IS NOT NULL""",
        midnight(first), midnight(last + timedelta(days=1)))
    return count


async def daily_counts(db: Database, names: Sequence[str], first: date,
                       last: date) -> dict[tuple[date, str], int]:
    """Events per UTC day and name in [first, last], from the day roll-up (kept forever)."""
    rows = await db.pool.fetch(
        """SELECT (bucket AT TIME ZONE 'UTC')::date AS day, name, sum(count)::bigint AS n
           FROM analytics_rollup_day
           WHERE bucket >= $1 AND bucket < $2 AND name = ANY($3::text[])
           GROUP BY 1, 2""", midnight(first), midnight(last + timedelta(days=1)), list(names))
    return {(row["day"], row["name"]): row["n"] for row in rows}


@dataclass(frozen=True)
class Cohort:
    week: date
    size: int
    # retained[k]: cohort members with any event in the k-th week after the sign-up week.
    retained: list[int]


async def signup_cohorts(db: Database, first_week: date, last_day: date) -> list[Cohort]:
    """Weekly sign-up cohorts from `first_week` (a Monday) and the weeks each one stayed."""
    start, end = midnight(first_week), midnight(last_day + timedelta(days=1))
    rows = await db.pool.fetch(
        """WITH cohort AS (
               SELECT user_id, min(date_trunc('week', occurred_at, 'UTC')) AS week
               FROM analytics_events
               WHERE name = $3 AND occurred_at >= $1 AND occurred_at < $2
                 AND user_id IS NOT NULL
               GROUP BY user_id),
           seen AS (
               SELECT DISTINCT e.user_id, date_trunc('week', e.occurred_at, 'UTC') AS week
               FROM analytics_events e JOIN cohort c ON c.user_id = e.user_id
               WHERE e.occurred_at >= $1 AND e.occurred_at < $2)
           SELECT (c.week AT TIME ZONE 'UTC')::date AS cohort_week,
                  ((s.week::date - c.week::date) / 7) AS offset_weeks,
                  count(DISTINCT s.user_id) AS n
           FROM cohort c JOIN seen s ON s.user_id = c.user_id AND s.week >= c.week
           GROUP BY 1, 2""", start, end, SIGNED_UP)
    sizes = await db.pool.fetch(
        """SELECT (week AT TIME ZONE 'UTC')::date AS cohort_week, count(*) AS n FROM (
               SELECT min(date_trunc('week', occurred_at, 'UTC')) AS week
               FROM analytics_events
               WHERE name = $3 AND occurred_at >= $1 AND occurred_at < $2
                 AND user_id IS NOT NULL
               GROUP BY user_id) c GROUP BY 1""", start, end, SIGNED_UP)
    size_of = {row["cohort_week"]: row["n"] for row in sizes}
    kept = {(row["cohort_week"], row["offset_weeks"]): row["n"] for row in rows}
    cohorts = []
    week = first_week
    while week <= last_day:
        # Only whole or current weeks after the cohort's own: no week from the future.
        weeks_seen = (week_start(last_day) - week).days // 7 + 1
        cohorts.append(Cohort(week, size_of.get(week, 0),
                              [kept.get((week, k), 0) for k in range(weeks_seen)]))
        week += timedelta(days=7)
    return cohorts


@dataclass(frozen=True)
class FunnelCounts:
    signed_up: int
    email_verified: int
    item_created: int
    message_sent: int
    item_or_message: int


async def signup_funnel(db: Database, first: date, last: date) -> FunnelCounts:
    """People who signed up in [first, last] and how many went on to each step since.

    Verification is read from `users` (it is not an analytics event); the first item and
    message from raw events (until now, within the retention).
    """
    row = await db.pool.fetchrow(
        """WITH cohort AS (
               SELECT DISTINCT user_id FROM analytics_events
               WHERE name = $3 AND occurred_at >= $1 AND occurred_at < $2
                 AND user_id IS NOT NULL),
           did AS (
               SELECT e.user_id, bool_or(e.name = $4) AS item, bool_or(e.name = $5) AS message
               FROM analytics_events e JOIN cohort c ON c.user_id = e.user_id
               WHERE e.occurred_at >= $1 AND e.name IN ($4, $5)
               GROUP BY e.user_id)
           SELECT count(*) AS signed_up,
                  count(u.email_verified_at) AS email_verified,
                  count(*) FILTER (WHERE d.item) AS item_created,
                  count(*) FILTER (WHERE d.message) AS message_sent,
                  count(d.user_id) AS item_or_message
           FROM cohort c
           LEFT JOIN users u ON u.id = c.user_id
           LEFT JOIN did d ON d.user_id = c.user_id""",
        midnight(first), midnight(last + timedelta(days=1)), SIGNED_UP, ITEM_CREATED,
        MESSAGE_SENT)
    assert row is not None
    return FunnelCounts(**dict(row))

