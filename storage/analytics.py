"""Analytics events: raw rows partitioned by UTC day, roll-ups per minute, hour and day.

The analytics worker writes through `AnalyticsStore` (the one interface a column store
such as ClickHouse would implement instead; see docs/analytics.md). A batch is COPYed
into a temporary staging table, then moved with INSERT ... ON CONFLICT DO NOTHING
RETURNING: only rows that were not there yet come back, and only those are added to the
roll-ups in the same statement, so a redelivered batch changes neither.

Retention: raw partitions older than `raw_days` are dropped whole (no row-by-row
delete); minute roll-ups are kept `minute_days`, hour roll-ups `hour_days`, day
roll-ups forever.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

import asyncpg
import orjson

from storage.db import Database

log = logging.getLogger(__name__)

COLUMNS = ("event_id", "name", "source", "occurred_at", "received_at", "user_id",
           "subject_type", "subject_id", "owner_id", "props", "ip_hash", "platform")
PARTITION = re.compile(r"^analytics_events_(\d{8})$")
ROLLUPS = ("minute", "hour", "day")


@dataclass(frozen=True)
class EventRow:
    """One raw event as stored (the storage side of jobs.analytics.AnalyticsEvent)."""

    event_id: uuid.UUID
    name: str
    source: str
    occurred_at: datetime
    received_at: datetime
    user_id: uuid.UUID | None = None
    subject_type: str | None = None
    subject_id: uuid.UUID | None = None
    owner_id: uuid.UUID | None = None
    props: dict[str, Any] = field(default_factory=dict)
    ip_hash: str | None = None
    platform: str | None = None

    def staged(self) -> tuple[Any, ...]:
        """The row for the staging table's COPY (props as JSON text)."""
        return tuple(orjson.dumps(self.props).decode() if column == "props"
                     else getattr(self, column) for column in COLUMNS)


@dataclass(frozen=True)
class Retention:
    """How long each kind of analytics data is kept, in days (day roll-ups: forever)."""

    raw_days: int = 90
    minute_days: int = 7
    hour_days: int = 90


@dataclass(frozen=True)
class WriteResult:
    """What one batch did: the rows that were new (redeliveries are not), and the skipped."""

    inserted: list[EventRow]
    # Older than the raw retention: their partition is gone and must not come back.
    expired: int = 0


@dataclass(frozen=True)
class Maintenance:
    created: list[str]
    dropped: list[str]
    minute_rollups_deleted: int
    hour_rollups_deleted: int


class AnalyticsStore(Protocol):
    """Where the analytics worker puts events: PostgreSQL now, a column store at scale."""

    async def write(self, events: Sequence[EventRow], now: datetime) -> WriteResult:
        """Store each event once (a redelivery adds nothing) and count the new ones."""
        ...

    async def maintain(self, now: datetime) -> Maintenance:
        """Make the partitions ahead of now and drop what is past its retention."""
        ...


def partition_name(day: date) -> str:
    return f"analytics_events_{day:%Y%m%d}"


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


async def partitions(conn: asyncpg.Connection | asyncpg.Pool) -> dict[date, str]:
    """The existing day partitions of analytics_events."""
    rows = await conn.fetch(
        """SELECT c.relname FROM pg_inherits i
           JOIN pg_class c ON c.oid = i.inhrelid
           JOIN pg_class p ON p.oid = i.inhparent
           WHERE p.relname = 'analytics_events'""")
    found: dict[date, str] = {}
    for row in rows:
        match = PARTITION.match(row["relname"])
        if match:
            found[datetime.strptime(match.group(1), "%Y%m%d").date()] = row["relname"]
    return found


async def create_partitions(db: Database, days: Iterable[date]) -> list[str]:
    """Create the missing day partitions; the names created (concurrent callers are fine)."""
    created: list[str] = []
    for day in sorted(set(days)):
        name = partition_name(day)
        async with db.transaction() as conn:
            # The name is built from a date only, so it is safe to put in the statement.
            status = await conn.execute(
                f"""CREATE TABLE IF NOT EXISTS {name} PARTITION OF analytics_events
                    FOR VALUES FROM ('{_midnight(day).isoformat()}')
                    TO ('{_midnight(day + timedelta(days=1)).isoformat()}')""")
        if status == "CREATE TABLE":
            created.append(name)
    return created


async def drop_partitions_before(db: Database, day: date) -> list[str]:
    """Drop whole day partitions older than `day` (a DROP, no row-by-row delete)."""
    dropped: list[str] = []
    for partition_day, name in sorted((await partitions(db.pool)).items()):
        if partition_day >= day:
            continue
        async with db.transaction() as conn:
            await conn.execute(f"DROP TABLE IF EXISTS {name}")
        dropped.append(name)
    return dropped


async def delete_rollups_before(db: Database, grain: str, before: datetime) -> int:
    if grain not in ROLLUPS:
        raise ValueError(f"unknown roll-up grain {grain!r}")
    status = await db.pool.execute(
        f"DELETE FROM analytics_rollup_{grain} WHERE bucket < $1", before)
    return int(status.split()[-1])


# The staging table lives for one transaction; its rows reach analytics_events through
# one statement that also adds exactly the inserted rows to every roll-up.
# props travel as text: the pool's jsonb codec is a text one, and COPY is binary.
_STAGE = """CREATE TEMPORARY TABLE analytics_staging
    (LIKE analytics_events INCLUDING DEFAULTS) ON COMMIT DROP;
    ALTER TABLE analytics_staging ALTER COLUMN props TYPE text"""
_ROLLUP = """
  {grain} AS (
    INSERT INTO analytics_rollup_{grain} AS r
        (bucket, name, subject_type, subject_id, owner_id, count)
    SELECT date_trunc('{grain}', occurred_at, 'UTC'), name, subject_type, subject_id,
           owner_id, count(*)
    FROM new GROUP BY 1, 2, 3, 4, 5
    -- One order for every writer, so concurrent batches lock shared rows without deadlock.
    ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (bucket, name, subject_type, subject_id, owner_id)
    DO UPDATE SET count = r.count + EXCLUDED.count)"""
# What each stored column is made of. An opted-out person's (users.analytics_opt_out)
# server events are kept for the owners' counts but name nobody: no user_id, no ip_hash,
# and no subject or owner when the subject is the person themself (a login). A missing
# owner is resolved from the subject here, so the roll-ups by owner count every event.
_SELF = "s.subject_id = s.user_id AND u.analytics_opt_out"
_STORED = {
    "user_id": "CASE WHEN u.analytics_opt_out THEN NULL ELSE s.user_id END",
    "ip_hash": "CASE WHEN u.analytics_opt_out THEN NULL ELSE s.ip_hash END",
    "subject_id": f"CASE WHEN {_SELF} THEN NULL ELSE s.subject_id END",
    "owner_id": f"""CASE WHEN {_SELF} THEN NULL ELSE coalesce(s.owner_id, i.author_id,
        CASE WHEN s.subject_type = 'user' THEN s.subject_id END) END""",
    "props": "s.props::jsonb",
}
_MOVE = f"""
WITH new AS (
    INSERT INTO analytics_events ({", ".join(COLUMNS)})
    SELECT DISTINCT ON (s.event_id, s.occurred_at)
        {", ".join(_STORED.get(c, "s." + c) for c in COLUMNS)}
    FROM analytics_staging s
    LEFT JOIN users u ON u.id = s.user_id
    -- Stories and slides are items too: one author column answers for all three.
    LEFT JOIN items i ON s.owner_id IS NULL AND s.subject_type IN ('item', 'story', 'slide')
        AND i.id = s.subject_id
    -- Events still queued when their user deleted the account are not stored, nor client
    -- events of a person who opted out (sent before the opt-out reached every server).
    WHERE u.deleted_at IS NULL
      AND NOT (s.source = 'client' AND coalesce(u.analytics_opt_out, false))
    ON CONFLICT DO NOTHING
    RETURNING {", ".join(COLUMNS)}
),{",".join(_ROLLUP.format(grain=grain) for grain in ROLLUPS)}
SELECT * FROM new"""


async def insert_events(conn: asyncpg.Connection, events: Sequence[EventRow]) -> list[EventRow]:
    """Store the events not stored yet and add them to the roll-ups; the new ones.

    Runs inside the caller's transaction; every day the events fall on needs a partition.
    """
    if not events:
        return []
    await conn.execute(_STAGE)
    await conn.copy_records_to_table("analytics_staging", records=[e.staged() for e in events],
                                     columns=COLUMNS)
    rows = await conn.fetch(_MOVE)
    return [EventRow(**dict(row)) for row in rows]


async def delete_user_events(conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
    """Delete every raw event the user did (account deletion); roll-ups hold no user."""
    status = await conn.execute("DELETE FROM analytics_events WHERE user_id = $1", user_id)
    return int(status.split()[-1])


async def events_of_user(db: Database, user_id: uuid.UUID, *,
                         after: tuple[datetime, uuid.UUID] | None = None,
                         limit: int | None = None) -> list[EventRow]:
    """The raw events the user did, oldest first (the data export): all of them, or a page
    of `limit` after the (occurred_at, event_id) of the previous page's last event."""
    moment, event_id = after if after is not None else (None, None)
    rows = await db.pool.fetch(
        f"""SELECT {", ".join(COLUMNS)} FROM analytics_events WHERE user_id = $1
              AND ($2::timestamptz IS NULL OR (occurred_at, event_id) > ($2, $3::uuid))
            ORDER BY occurred_at, event_id LIMIT $4""", user_id, moment, event_id, limit)
    return [EventRow(**dict(row)) for row in rows]


class PostgresAnalyticsStore:
    """AnalyticsStore on PostgreSQL: day partitions, roll-up tables."""

    def __init__(self, db: Database, retention: Retention, ahead_days: int = 7) -> None:
        self.db = db
        self.retention = retention
        self.ahead_days = ahead_days
        # Days known to have a partition: a batch only asks PostgreSQL about new days.
        self._known: set[date] = set()

    def cutoff(self, now: datetime) -> date:
        """The oldest UTC day whose raw events are kept."""
        return utc_day(now) - timedelta(days=self.retention.raw_days)

    async def write(self, events: Sequence[EventRow], now: datetime) -> WriteResult:
        cutoff = self.cutoff(now)
        kept = [e for e in events if utc_day(e.occurred_at) >= cutoff]
        days = {utc_day(e.occurred_at) for e in kept} - self._known
        if days:
            # Outside the batch's transaction: creating a partition locks the parent table.
            await create_partitions(self.db, days)
            self._known |= days
        try:
            async with self.db.transaction() as conn:
                inserted = await insert_events(conn, kept)
        except asyncpg.CheckViolationError:
            # No partition for a row: a day this process thought existed was dropped;
            # ask PostgreSQL again on the retry.
            self._known.clear()
            raise
        return WriteResult(inserted, expired=len(events) - len(kept))

    async def maintain(self, now: datetime) -> Maintenance:
        today = utc_day(now)
        created = await create_partitions(
            self.db, (today + timedelta(days=n) for n in range(-1, self.ahead_days + 1)))
        dropped = await drop_partitions_before(self.db, self.cutoff(now))
        self._known = {d for d in self._known if d >= self.cutoff(now)}
        minute = await delete_rollups_before(
            self.db, "minute", _midnight(today - timedelta(days=self.retention.minute_days)))
        hour = await delete_rollups_before(
            self.db, "hour", _midnight(today - timedelta(days=self.retention.hour_days)))
        return Maintenance(created, dropped, minute, hour)
