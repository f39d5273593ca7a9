"""Periodic purge of sync events older than the retention window."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from storage.db import Database
from storage.events import purge_events_before

log = logging.getLogger(__name__)


class EventRetention:
    """Every interval, drop events past retention; older sync cursors then get a gap."""

    def __init__(
        self, db: Database, retention_s: int, clock: Callable[[], datetime],
        interval_s: float = 3600.0,
    ) -> None:
        self.db = db
        self.retention = timedelta(seconds=retention_s)
        self.clock = clock
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def purge_once(self) -> int:
        purged = await purge_events_before(self.db, self.clock() - self.retention)
        if purged:
            log.info("purged old sync events", extra={"events": purged})
        return purged

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                await self.purge_once()
            except Exception:
                log.exception("event purge failed; trying again next interval")
            await asyncio.sleep(self.interval_s)
