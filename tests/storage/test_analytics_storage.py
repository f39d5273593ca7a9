"""Analytics storage: each event stored once, roll-ups that never double count, partitions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from storage import analytics as store
from storage.analytics import EventRow, PostgresAnalyticsStore, Retention
from storage.db import Database
from tests.storage.row_helpers import new_user


def event(at: datetime, subject: uuid.UUID, *, name: str = "item.view",
          user: uuid.UUID | None = None, owner: uuid.UUID | None = None) -> EventRow:
    return EventRow(event_id=uuid.uuid4(), name=name, source="server", occurred_at=at,
                    received_at=at, user_id=user, subject_type="item", subject_id=subject,
                    owner_id=owner, props={"n": 1}, ip_hash=None, platform="web")


async def rollups(db: Database, subject: uuid.UUID) -> dict[str, list[tuple[datetime, str, int]]]:
    found = {}
    for grain in store.ROLLUPS:
        rows = await db.pool.fetch(
            f"""SELECT bucket, name, count FROM analytics_rollup_{grain}
                WHERE subject_id = $1 ORDER BY bucket, name""", subject)
        found[grain] = [(r["bucket"], r["name"], r["count"]) for r in rows]
    return found


async def raw_count(db: Database, subject: uuid.UUID) -> int:
    count: int = await db.pool.fetchval(
        "SELECT count(*) FROM analytics_events WHERE subject_id = $1", subject)
    return count


async def test_a_batch_lands_once_and_a_redelivery_adds_nothing(db: Database) -> None:
    analytics = PostgresAnalyticsStore(db, Retention())
    now = datetime.now(UTC)
    subject = uuid.uuid4()
    at = now.replace(second=10, microsecond=0)
    batch = [event(at, subject), event(at + timedelta(seconds=5), subject),
             event(at, subject, name="item.share")]
    first = await analytics.write([*batch, batch[0]], now)
    assert sorted(e.event_id for e in first.inserted) == sorted(e.event_id for e in batch)
    assert await raw_count(db, subject) == 3
    counted = await rollups(db, subject)
    assert sum(c for _, name, c in counted["minute"] if name == "item.view") == 2
    assert [(n, c) for _, n, c in counted["day"]] == [("item.share", 1), ("item.view", 2)]

    again = await analytics.write(batch, now)
    assert again.inserted == []
    assert await raw_count(db, subject) == 3
    assert await rollups(db, subject) == counted

    # A new event beside redelivered ones adds exactly one.
    extra = event(at, subject)
    mixed = await analytics.write([*batch, extra], now)
    assert [e.event_id for e in mixed.inserted] == [extra.event_id]
    assert sum(c for _, n, c in (await rollups(db, subject))["day"] if n == "item.view") == 3


async def test_a_failure_after_copy_rolls_everything_back(db: Database) -> None:
    analytics = PostgresAnalyticsStore(db, Retention())
    now = datetime.now(UTC)
    subject = uuid.uuid4()
    batch = [event(now, subject) for _ in range(4)]
    await store.create_partitions(db, [store.utc_day(now)])
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            await store.insert_events(conn, batch)
            raise RuntimeError("the worker died before the commit")
    assert await raw_count(db, subject) == 0
    assert await rollups(db, subject) == {"minute": [], "hour": [], "day": []}
    assert len((await analytics.write(batch, now)).inserted) == 4
    assert (await rollups(db, subject))["day"][0][2] == 4


async def test_partitions_are_made_ahead_and_old_ones_dropped_while_rollups_stay(
        db: Database) -> None:
    # A day long ago, so dropping it touches no other test's partitions.
    then = datetime(2001, 1, 1, 12, 30, tzinfo=UTC)
    analytics = PostgresAnalyticsStore(db, Retention(raw_days=90, minute_days=7, hour_days=30),
                                       ahead_days=3)
    done = await analytics.maintain(then)
    days = await store.partitions(db.pool)
    for n in range(-1, 4):
        assert then.date() + timedelta(days=n) in days
    subject = uuid.uuid4()
    assert len((await analytics.write([event(then, subject), event(then, subject)], then))
               .inserted) == 2

    later = then + timedelta(days=100)
    done = await analytics.maintain(later)
    assert "analytics_events_20010101" in done.dropped
    assert then.date() not in await store.partitions(db.pool)
    assert store.utc_day(later) + timedelta(days=3) in await store.partitions(db.pool)
    assert await raw_count(db, subject) == 0
    kept = await rollups(db, subject)
    assert kept["minute"] == [] and kept["hour"] == []
    assert [(b, c) for b, _, c in kept["day"]] == [(datetime(2001, 1, 1, tzinfo=UTC), 2)]

    # An event from before the retention is not stored: its partition stays dropped.
    late = await analytics.write([event(then, subject)], later)
    assert late.inserted == [] and late.expired == 1
    assert then.date() not in await store.partitions(db.pool)
    await store.drop_partitions_before(db, datetime(2002, 1, 1).date())


async def test_account_deletion_data_events_of_user_and_deleted_users(db: Database) -> None:
    analytics = PostgresAnalyticsStore(db, Retention())
    now = datetime.now(UTC)
    user, other = await new_user(db), await new_user(db)
    subject = uuid.uuid4()
    mine = [event(now - timedelta(seconds=2), subject, user=user), event(now, subject, user=user)]
    await analytics.write([*mine, event(now, subject, user=other)], now)
    assert [e.event_id for e in await store.events_of_user(db, user)] == \
        [e.event_id for e in mine]
    assert (await store.events_of_user(db, user))[0].props == {"n": 1}

    async with db.transaction() as conn:
        assert await store.delete_user_events(conn, user) == 2
        await conn.execute("UPDATE users SET deleted_at = now() WHERE id = $1", user)
    assert await store.events_of_user(db, user) == []
    assert len(await store.events_of_user(db, other)) == 1
    # An event still queued when the account went is not stored.
    assert (await analytics.write([event(now, subject, user=user)], now)).inserted == []
    assert await store.events_of_user(db, user) == []


async def test_a_row_without_a_partition_is_refused(db: Database) -> None:
    at = datetime(1999, 6, 1, tzinfo=UTC)
    with pytest.raises(asyncpg.CheckViolationError):
        async with db.transaction() as conn:
            await store.insert_events(conn, [event(at, uuid.uuid4())])
