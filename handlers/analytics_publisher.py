"""A non-blocking publisher of analytics events: a bounded buffer flushed in batches.

Commands and client batches only append to the buffer (`offer`, never awaits), so analytics
never slows or fails a command. One background task (opened in server/resources.py's
cleanup_ctx) sends the buffer to the `analytics` queue in jobs of EVENTS_PER_JOB at most.
When RabbitMQ is down the events wait in the buffer; once it is full the oldest ones are
dropped, counted by the `on_drop` callback (a Prometheus counter) and logged at most once a
minute, so an outage costs analytics, never the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable

from handlers.analytics_opt_out import OptOutCache
from jobs.analytics import EVENTS_PER_JOB, QUEUE, AnalyticsEvent, events_jobs
from jobs.queue import JobQueue, QueueUnavailable

log = logging.getLogger(__name__)

# Log a drop at most this often: an outage must not flood the logs.
DROP_LOG_EVERY_S = 60.0


class AnalyticsPublisher:
    """Buffers events in memory and publishes them in batches from one background task."""

    def __init__(self, queue: JobQueue, *, ip_secret: str, capacity: int = 50_000, flush_every_s: float = 0.5,
                 retry_after_s: float = 2.0, on_drop: Callable[[int], None] | None = None) -> None:
        self.queue = queue
        # What the daily salt of `ip_hash` derives from (handlers.activity.ip_hash).
        self.ip_secret = ip_secret
        self.capacity = capacity
        self.flush_every_s = flush_every_s
        self.retry_after_s = retry_after_s
        self.on_drop = on_drop
        self._buffer: deque[AnalyticsEvent] = deque(maxlen=capacity)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_drop_log = float("-inf")
        self.dropped = 0
        # Who opted out of analytics, cached briefly so analytics_event.send reads no row
        # per call (one per process, like the buffer).
        self.opt_outs = OptOutCache()

    def offer(self, events: list[AnalyticsEvent]) -> None:
        """Queue events for publishing; never blocks, never raises."""
        before = len(self._buffer)
        # A full deque drops from the left: the oldest go first, recent activity matters most.
        self._buffer.extend(events)
        lost = before + len(events) - len(self._buffer)
        if lost:
            self._dropped(lost)
        if len(self._buffer) >= EVENTS_PER_JOB:
            self._wake.set()

    def _dropped(self, count: int) -> None:
        self.dropped += count
        if self.on_drop is not None:
            self.on_drop(count)
        now = time.monotonic()
        if now - self._last_drop_log >= DROP_LOG_EVERY_S:
            self._last_drop_log = now
            log.warning("analytics buffer full; events dropped",
                        extra={"dropped_total": self.dropped, "capacity": self.capacity})

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop the task, then try once to publish what is left (a clean shutdown loses none)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        with contextlib.suppress(QueueUnavailable):
            await self.flush()

    async def flush(self) -> None:
        """Publish everything buffered now; raises QueueUnavailable with the rest kept."""
        while self._buffer:
            batch = [self._buffer.popleft()
                     for _ in range(min(EVENTS_PER_JOB, len(self._buffer)))]
            (job,) = events_jobs(batch)
            try:
                await self.queue.publish(QUEUE, job)
            except BaseException:
                # Unconfirmed: back to the head, as far as the room left by newer events goes.
                room = self.capacity - len(self._buffer)
                kept = batch[len(batch) - room:] if room < len(batch) else batch
                self._buffer.extendleft(reversed(kept))
                if len(kept) < len(batch):
                    self._dropped(len(batch) - len(kept))
                raise

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.flush_every_s)
            self._wake.clear()
            try:
                await self.flush()
            except QueueUnavailable as exc:
                log.debug("analytics queue unavailable; events kept",
                          extra={"pending": len(self._buffer), "error": str(exc)})
                await asyncio.sleep(self.retry_after_s)
            except Exception:
                # A bug here must not end publishing for the life of the process.
                log.exception("analytics publishing failed")
                await asyncio.sleep(self.retry_after_s)
