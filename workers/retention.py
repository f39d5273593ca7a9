"""Periodic purge of sync events older than the retention window."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from storage.db import Database
from storage.events import purge_events_before
from workers.sweeps import Periodic

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
        self._periodic = Periodic(self.purge_once, interval_s, name="event-retention", log=log,
                                  failed="event purge failed; trying again next interval")

    async def purge_once(self) -> int:
        purged = await purge_events_before(self.db, self.clock() - self.retention)
        if purged:
            log.info("purged old sync events", extra={"events": purged})
        return purged

    async def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()
