"""The analytics worker over real RabbitMQ, PostgreSQL and Redis: every event lands once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import pytest
import redis.asyncio as aioredis

from channels.analytics_live import RedisLiveCounters, count_key
from config import Settings
from config.clock import utc_now
from jobs.analytics import QUEUE, AnalyticsEvent, events_jobs
from jobs.queue import AmqpQueue, RetryPolicy, new_job
from storage import analytics as store
from storage.analytics import EventRow, Maintenance, PostgresAnalyticsStore, Retention, WriteResult
from storage.db import Database
from storage.migrate import migrate
from tests.conftest import AMQP_URL, REDIS_URL, signup
from tests.workers.outreach_helpers import eventually
from workers.analytics import AnalyticsMaintenance, AnalyticsWorker

FAST_RETRY = RetryPolicy(max_attempts=2, first_delay_s=0.05, max_delay_s=0.1)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    assert settings.database_url is not None
    await migrate(settings.database_url)
    database = await Database.connect(settings.database_url, 1, 4)
    yield database
    await database.close()


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(REDIS_URL)
    yield client
    await client.aclose()


def views(subject: uuid.UUID, count: int, at: datetime | None = None) -> list[AnalyticsEvent]:
    at = at or utc_now()
    return [AnalyticsEvent(event_id=uuid.uuid4(), name="item.view", source="server",
                           occurred_at=at, received_at=at, user_id=uuid.uuid4(),
                           subject_type="item", subject_id=subject, owner_id=uuid.uuid4())
            for _ in range(count)]


async def stored(db: Database, subject: uuid.UUID) -> tuple[int, int]:
    """(raw rows, day roll-up count) of a subject."""
    raw = await db.pool.fetchval("SELECT count(*) FROM analytics_events WHERE subject_id = $1",
                                 subject)
    rolled = await db.pool.fetchval(
        "SELECT coalesce(sum(count), 0) FROM analytics_rollup_day WHERE subject_id = $1", subject)
    return int(raw), int(rolled)


class Deployment:
    """One worker process: its queue connection, its worker."""

    def __init__(self, settings: Settings, db: Database, redis_client: aioredis.Redis,
                 analytics: Any = None) -> None:
        self.queue = AmqpQueue(AMQP_URL, settings.namespace, FAST_RETRY)
        self.live = RedisLiveCounters(redis_client, settings.namespace)
        self.worker = AnalyticsWorker(analytics or PostgresAnalyticsStore(db, Retention()),
                                      self.live, utc_now, batch_max=50, batch_wait_s=0.05)

    async def start(self) -> None:
        await self.queue.connect()
        await self.worker.start()
        await self.queue.consume(QUEUE, self.worker.handle, prefetch=100)

    async def stop(self) -> None:
        await self.queue.close()
        await self.worker.stop()


async def test_jobs_land_once_and_move_the_live_counters(
        settings: Settings, db: Database, redis_client: aioredis.Redis) -> None:
    deployed = Deployment(settings, db, redis_client)
    await deployed.start()
    try:
        subject = uuid.uuid4()
        events = views(subject, 7)
        # The same visitor twice: a count of 8 and 7 uniques.
        again = AnalyticsEvent(**{**events[0].__dict__, "event_id": uuid.uuid4()})
        for job in events_jobs([*events[:4], again]) + events_jobs(events[4:]):
            await deployed.queue.publish(QUEUE, job)

        async def landed() -> bool:
            return await stored(db, subject) == (8, 8)

        await eventually(landed)
        today = utc_now().astimezone(UTC).date()
        assert await deployed.live.count("item.view", subject, today) == 8
        assert await deployed.live.uniques("item.view", subject, today) == 7
        assert 0 < await redis_client.ttl(
            count_key(settings.namespace, "item.view", subject, today)) <= 3 * 24 * 3600

        # The same jobs delivered again: rows, roll-ups and live counters stay.
        for job in events_jobs(events):
            await deployed.queue.publish(QUEUE, job)
        marker = uuid.uuid4()
        await deployed.queue.publish(QUEUE, events_jobs(views(marker, 1))[0])

        async def marker_landed() -> bool:
            return (await stored(db, marker))[0] == 1

        await eventually(marker_landed)
        await asyncio.sleep(0.2)
        assert await stored(db, subject) == (8, 8)
        assert await deployed.live.count("item.view", subject, today) == 8
    finally:
        await deployed.stop()


async def test_a_redelivered_batch_adds_nothing(
        settings: Settings, db: Database, redis_client: aioredis.Redis) -> None:
    # As when a worker committed and died before its ack: the batch comes once more.
    worker = AnalyticsWorker(PostgresAnalyticsStore(db, Retention()),
                             RedisLiveCounters(redis_client, settings.namespace), utc_now)
    subject = uuid.uuid4()
    job = events_jobs(views(subject, 5))[0]
    await worker.start()
    try:
        await worker.handle(job)
        rollups = await db.pool.fetch(
            "SELECT * FROM analytics_rollup_minute WHERE subject_id = $1", subject)
        await asyncio.gather(worker.handle(job), worker.handle(job))
        assert await stored(db, subject) == (5, 5)
        assert await db.pool.fetch(
            "SELECT * FROM analytics_rollup_minute WHERE subject_id = $1", subject) == rollups
        today = utc_now().astimezone(UTC).date()
        assert await worker.live.count("item.view", subject, today) == 5
    finally:
        await worker.stop()


class DiesMidBatch:
    """A store whose first write COPYs and inserts its batch, then hangs before the commit."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.copied = asyncio.Event()

    async def write(self, events: Sequence[EventRow], now: datetime) -> WriteResult:
        await store.create_partitions(self.db, {store.utc_day(e.occurred_at) for e in events})
        async with self.db.transaction() as conn:
            await store.insert_events(conn, events)
            self.copied.set()
            await asyncio.Event().wait()  # the process dies here; the transaction never commits
        raise AssertionError("unreachable")

    async def maintain(self, now: datetime) -> Maintenance:
        raise NotImplementedError


async def test_a_worker_killed_mid_batch_then_restarted_lands_each_event_once(
        settings: Settings, db: Database, redis_client: aioredis.Redis) -> None:
    subject = uuid.uuid4()
    events = views(subject, 30)
    dying = DiesMidBatch(db)
    first = Deployment(settings, db, redis_client, analytics=dying)
    await first.start()
    for job in events_jobs(events[:20]) + events_jobs(events[10:]):
        await first.queue.publish(QUEUE, job)
    await asyncio.wait_for(dying.copied.wait(), 10)
    # The kill: the connection drops (RabbitMQ takes the unacked jobs back) and the
    # flusher dies with its transaction open (PostgreSQL rolls it back).
    # Private on purpose: the test plays the kernel killing the process.
    connection = first.queue._connection
    assert connection is not None
    await connection.close()
    await first.worker.stop()
    assert await stored(db, subject) == (0, 0)

    second = Deployment(settings, db, redis_client)
    await second.start()
    try:
        async def landed() -> bool:
            return await stored(db, subject) == (30, 30)

        await eventually(landed)
        await asyncio.sleep(0.3)
        assert await stored(db, subject) == (30, 30)
        today = utc_now().astimezone(UTC).date()
        assert await second.live.count("item.view", subject, today) == 30
        assert await second.live.uniques("item.view", subject, today) == 30
    finally:
        await second.stop()


async def test_malformed_jobs_are_dead_lettered_without_failing_their_batch(
        settings: Settings, db: Database, redis_client: aioredis.Redis) -> None:
    deployed = Deployment(settings, db, redis_client)
    await deployed.start()
    try:
        subject = uuid.uuid4()
        good = events_jobs(views(subject, 3))[0]
        bad = new_job("analytics.events", events=[{"event_id": "not a uuid"}])
        naive = events_jobs(views(uuid.uuid4(), 1, datetime(2030, 1, 1)))[0]
        for job in (bad, good, naive):
            await deployed.queue.publish(QUEUE, job, batch=True)

        async def dead() -> bool:
            connection = await aio_pika.connect(AMQP_URL)
            async with connection:
                channel = await connection.channel()
                declared = await (await channel.get_queue(
                    f"{settings.namespace}.{QUEUE}.dead", ensure=True)).declare()
                return declared.message_count == 2

        async def landed() -> bool:
            return await stored(db, subject) == (3, 3)

        await eventually(dead)
        await eventually(landed)
    finally:
        await deployed.stop()


async def test_account_deletion_deletes_raw_events(
        settings: Settings, db: Database, client: Any, redis_client: aioredis.Redis) -> None:
    alice = await signup(client)
    worker = AnalyticsWorker(PostgresAnalyticsStore(db, Retention()),
                             RedisLiveCounters(redis_client, settings.namespace), utc_now)
    subject = uuid.uuid4()
    now = utc_now()
    mine = [AnalyticsEvent(event_id=uuid.uuid4(), name="item.view", source="client",
                           occurred_at=now - timedelta(seconds=n), received_at=now,
                           user_id=uuid.UUID(alice.id), subject_type="item", subject_id=subject)
            for n in range(3)]
    await worker.start()
    try:
        await worker.handle(events_jobs(mine)[0])
        assert len(await store.events_of_user(db, uuid.UUID(alice.id))) == 3
        resp = await client.delete("/v1/users/me", json={"password": alice.password},
                                   headers=alice.headers)
        assert resp.status == 204
        assert await store.events_of_user(db, uuid.UUID(alice.id)) == []
        # The roll-ups hold no person and stay.
        assert (await stored(db, subject))[1] == 3
    finally:
        await worker.stop()


async def test_a_command_activity_reaches_the_table_and_the_day_rollup(
        db: Database, client: Any) -> None:
    # End to end: the signup command's event, through RabbitMQ and the in-process worker.
    alice = await signup(client)
    alice_id = uuid.UUID(alice.id)

    async def landed() -> bool:
        return any(e.name == "user.signed_up" for e in await store.events_of_user(db, alice_id))

    await eventually(landed)
    signed_up = [e for e in await store.events_of_user(db, alice_id) if e.name == "user.signed_up"]
    assert len(signed_up) == 1 and signed_up[0].subject_id == alice_id
    assert await db.pool.fetchval(
        """SELECT sum(count) FROM analytics_rollup_day
           WHERE name = 'user.signed_up' AND subject_id = $1""", alice_id) == 1


async def test_maintenance_runs_at_start_and_logs_what_it_did(
        db: Database, caplog: pytest.LogCaptureFixture) -> None:
    then = datetime(2002, 3, 1, tzinfo=UTC)
    maintenance = AnalyticsMaintenance(PostgresAnalyticsStore(db, Retention(), ahead_days=2),
                                       lambda: then, interval_s=3600)
    caplog.set_level("INFO", logger="workers.analytics")
    await maintenance.start()
    try:
        async def ran() -> bool:
            return any(r.getMessage() == "analytics maintenance" for r in caplog.records)

        await eventually(ran)
        record = next(r for r in caplog.records if r.getMessage() == "analytics maintenance")
        assert "analytics_events_20020303" in record.__dict__["partitions_created"]
        assert then.date() + timedelta(days=2) in await store.partitions(db.pool)
    finally:
        await maintenance.stop()
        await store.drop_partitions_before(db, datetime(2003, 1, 1).date())
