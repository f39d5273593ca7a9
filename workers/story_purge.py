"""Periodic purge of expired stories' media: the blobs of stories past the retention window.

Expiry itself needs no job (every story query compares expires_at with the clock); this
only reclaims space. A media goes when every story using it expired more than
story_media_retention_s ago, none of them is in a highlight, and nothing else (a message,
another item) uses it. Its row goes first, in a transaction, then its blobs: a blob whose
delete fails is only an orphan file, never a row pointing at nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from storage import stories as store
from storage.blobs import BlobStore
from storage.db import Database
from workers.sweeps import Periodic

log = logging.getLogger(__name__)

# Media rows deleted per transaction; a pass repeats batches until none is left.
BATCH = 200


@dataclass(frozen=True)
class PurgeResult:
    media: int
    blobs: int
    blob_failures: int


async def purge_once(db: Database, blobs: BlobStore, now: datetime, retention_s: int,
                     batch: int = BATCH) -> PurgeResult:
    """One pass: delete the media of stories expired at or before now - retention."""
    cutoff = now - timedelta(seconds=retention_s)
    media = deleted = failed = 0
    while True:
        async with db.transaction() as conn:
            gone = await store.purge_expired_media(conn, cutoff, batch)
        for purged in gone:
            for key in purged.storage_keys:
                try:
                    deleted += await blobs.delete(key)
                except Exception:
                    failed += 1
                    log.warning("story media blob not deleted",
                                extra={"media_id": str(purged.media_id), "key": key},
                                exc_info=True)
        media += len(gone)
        if len(gone) < batch:
            break
    result = PurgeResult(media, deleted, failed)
    log.info("story media purge pass", extra={"cutoff": cutoff.isoformat(), "media": media,
                                              "blobs": deleted, "blob_failures": failed})
    return result


class StoryPurge:
    """Runs purge_once every interval inside a worker process."""

    def __init__(self, db: Database, blobs: BlobStore, retention_s: int, interval_s: float,
                 clock: Callable[[], datetime]) -> None:
        self.db = db
        self.blobs = blobs
        self.retention_s = retention_s
        self.interval_s = interval_s
        self.clock = clock
        self._periodic = Periodic(self._purge, interval_s, name="story-purge", log=log,
                                  failed="story media purge failed; trying again next interval")

    async def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def _purge(self) -> None:
        await purge_once(self.db, self.blobs, self.clock(), self.retention_s)
