"""The analytics worker: stores activity events in batches, once each, and counts them live.

Jobs (`analytics.events`, jobs/analytics.py) wait on a future while a flusher gathers them
into one batch: up to `batch_max` events, or `batch_wait_s` after the first one arrived.
The batch is written in one transaction (storage/analytics.py) and each job is acked only
after that commit: a worker that dies mid-batch leaves its jobs unacked, RabbitMQ
redelivers them, and the (event_id, occurred_at) key makes them land once. Only rows
that were new are added to the roll-ups and to the live counters.

A malformed job fails before it joins a batch, so it never fails its neighbours; the
queue retries it and then dead-letters it, as for every worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from channels.analytics_live import (
    LIVE_SUBJECT_TYPES,
    LiveCounters,
    LiveHit,
    MemoryLiveCounters,
    RedisLiveCounters,
    visitor_of,
)
from config import Settings
from jobs.analytics import EVENTS_JOB, QUEUE, AnalyticsEvent
from jobs.queue import JobQueue
from storage.analytics import AnalyticsStore, EventRow, PostgresAnalyticsStore, Retention, utc_day
from storage.db import Database
from workers.sweeps import Periodic

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    rows: list[EventRow]
    future: asyncio.Future[None]


def rows_of(job: dict[str, Any]) -> list[EventRow]:
    """The job's events as rows; raises ValueError on anything malformed."""
    if job.get("type") != EVENTS_JOB:
        raise ValueError(f"unknown analytics job type {job.get('type')!r}")
    raw = job.get("events")
    if not isinstance(raw, list):
        raise ValueError("an analytics.events job carries a list of events")
    try:
        events = [AnalyticsEvent.from_json(item) for item in raw]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"malformed analytics event: {exc!r}") from exc
    rows = []
    for e in events:
        if e.occurred_at.tzinfo is None or e.received_at.tzinfo is None:
            raise ValueError("analytics timestamps must carry a time zone")
        rows.append(EventRow(
            event_id=e.event_id, name=e.name, source=e.source, occurred_at=e.occurred_at,
            received_at=e.received_at, user_id=e.user_id, subject_type=e.subject_type,
            subject_id=e.subject_id, owner_id=e.owner_id, props=e.props, ip_hash=e.ip_hash,
            platform=e.platform))
    return rows


def live_hits(rows: list[EventRow]) -> list[LiveHit]:
    return [LiveHit(r.name, r.subject_id, utc_day(r.occurred_at), visitor_of(r.user_id, r.ip_hash))
            for r in rows if r.subject_id is not None and r.subject_type in LIVE_SUBJECT_TYPES]


class AnalyticsWorker:
    def __init__(self, store: AnalyticsStore, live: LiveCounters, clock: Callable[[], datetime],
                 *, batch_max: int = 5000, batch_wait_s: float = 0.2) -> None:
        self.store = store
        self.live = live
        self.clock = clock
        self.batch_max = batch_max
        self.batch_wait_s = batch_wait_s
        self._pending: list[_Pending] = []
        self._writing: list[_Pending] = []
        self._pending_events = 0
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush_forever(), name="analytics-flusher")

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        for pending in [*self._writing, *self._pending]:
            if not pending.future.done():
                pending.future.set_exception(RuntimeError("worker stopping"))

    async def handle(self, job: dict[str, Any]) -> None:
        """Store the job's events with the current batch; returns after its commit."""
        rows = rows_of(job)
        if not rows:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(rows, future))
        self._pending_events += len(rows)
        self._arrived.set()
        if self._pending_events >= self.batch_max:
            self._full.set()
        await future  # raises if the batch failed: the queue retries the job

    async def _flush_forever(self) -> None:
        while True:
            await self._arrived.wait()
            # Wait for a full batch, or for the first job's wait to run out.
            try:
                await asyncio.wait_for(self._full.wait(), timeout=self.batch_wait_s)
            except TimeoutError:
                pass
            self._writing = self._take()
            if self._writing:
                await self._write(self._writing)
            self._writing = []

    def _take(self) -> list[_Pending]:
        """Whole jobs up to batch_max events (at least one job, however large)."""
        taken, events = 0, 0
        while taken < len(self._pending) and \
                (taken == 0 or events + len(self._pending[taken].rows) <= self.batch_max):
            events += len(self._pending[taken].rows)
            taken += 1
        batch, self._pending = self._pending[:taken], self._pending[taken:]
        self._pending_events -= events
        if self._pending_events < self.batch_max:
            self._full.clear()
        if not self._pending:
            self._arrived.clear()
        return batch

    async def _write(self, batch: list[_Pending]) -> None:
        try:
            await self.write([row for pending in batch for row in pending.rows])
        except Exception:
            log.exception("analytics batch failed", extra={"jobs": len(batch)})
            if len(batch) > 1:
                # One job that breaks the batch must not fail its neighbours: each alone.
                for pending in batch:
                    await self._write([pending])
                return
            if not batch[0].future.done():
                batch[0].future.set_exception(RuntimeError("analytics batch not stored"))
            return
        for pending in batch:
            if not pending.future.done():
                pending.future.set_result(None)

    async def write(self, rows: list[EventRow]) -> int:
        """Store the rows in one transaction, then count the new ones live; how many were new."""
        started = time.monotonic()
        result = await self.store.write(rows, self.clock())
        try:
            await self.live.add(live_hits(result.inserted))
        except Exception:
            # Stored is what matters; the live figure is a few short until tomorrow's key.
            log.warning("analytics live counters not updated", exc_info=True,
                        extra={"events": len(result.inserted)})
        log.info("analytics batch stored", extra={
            "events": len(rows), "inserted": len(result.inserted),
            "duplicates": len(rows) - len(result.inserted) - result.expired,
            "expired": result.expired, "ms": round((time.monotonic() - started) * 1000, 1)})
        return len(result.inserted)


class AnalyticsMaintenance:
    """Every interval: day partitions ahead, expired partitions and roll-ups dropped."""

    def __init__(self, store: AnalyticsStore, clock: Callable[[], datetime],
                 interval_s: float) -> None:
        self.store = store
        self.clock = clock
        self._periodic = Periodic(self.run_once, interval_s, name="analytics-maintenance",
                                  log=log, failed="analytics maintenance failed; next interval retries")

    async def run_once(self) -> None:
        done = await self.store.maintain(self.clock())
        log.info("analytics maintenance", extra={
            "partitions_created": done.created, "partitions_dropped": done.dropped,
            "minute_rollups_deleted": done.minute_rollups_deleted,
            "hour_rollups_deleted": done.hour_rollups_deleted})

    async def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()


@dataclass
class RunningAnalytics:
    worker: AnalyticsWorker
    maintenance: AnalyticsMaintenance

    async def stop(self) -> None:
        await self.maintenance.stop()
        await self.worker.stop()


def build_store(settings: Settings, db: Database) -> PostgresAnalyticsStore:
    return PostgresAnalyticsStore(
        db, Retention(raw_days=settings.analytics_retention_days,
                      minute_days=settings.analytics_minute_rollup_days,
                      hour_days=settings.analytics_hour_rollup_days),
        ahead_days=settings.analytics_partitions_ahead_days)


async def start_analytics_worker(settings: Settings, queue: JobQueue, db: Database,
                                 redis: aioredis.Redis | None,
                                 clock: Callable[[], datetime]) -> RunningAnalytics:
    store = build_store(settings, db)
    live: LiveCounters = (RedisLiveCounters(redis, settings.namespace) if redis is not None
                          else MemoryLiveCounters())
    maintenance = AnalyticsMaintenance(store, clock, settings.analytics_maintenance_interval_s)
    # Partitions first: the first batch then finds today's partition in place.
    await maintenance.start()
    worker = AnalyticsWorker(store, live, clock, batch_max=settings.analytics_batch_max,
                             batch_wait_s=settings.analytics_batch_wait_ms / 1000)
    await worker.start()
    # Enough jobs in hand to fill a batch of small jobs (capture sends few events per job).
    await queue.consume(QUEUE, worker.handle, prefetch=max(50, min(settings.analytics_batch_max, 1000)))
    return RunningAnalytics(worker, maintenance)
