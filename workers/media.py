"""The media worker: an upload becomes a stripped copy, thumbnails, a poster and an MP4.

A job names a media id. The worker reads the original from the blob store, does the
CPU work in a thread (images) or in ffmpeg subprocesses (videos), each bounded by a
semaphore, writes the results under keys derived from the media id, records them and
the status in one transaction, then tells the owner's devices (media.ready or
media.failed). A redelivered job rewrites the same keys and rows, or, when the outcome
is already stored, only announces it again.

A file that can never be processed (corrupt, a decompression bomb, a lying type, an
ffmpeg failure or overrun) is a permanent failure: the media is marked failed with a
reason and the job is acked. Anything else (database, blob store, bus) raises, and the
queue retries the job with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

from PIL import Image

from channels.bus import Bus
from channels.realtime import Realtime
from config import Settings
from jobs.media import PROCESS_JOB, QUEUE, process_job
from jobs.queue import JobQueue, QueueUnavailable
from storage import media as media_store
from storage.blobs import BlobNotFound, BlobStore, BlobTooLarge, LocalBlobStore
from storage.db import Database
from storage.media import Media, Rendition
from storage.views.media import MediaOut
from workers import media_video
from workers.media_images import ImageResult, Output, Rejected, process_image, video_stills
from workers.sweeps import Periodic, clear_stale_work, requeue

log = logging.getLogger(__name__)


# Renditions are smaller than their originals in practice; this only stops a runaway encode.
RENDITION_MAX_BYTES = 1024 * 1024 * 1024
READ_CHUNK = 256 * 1024
# An upload still "uploaded" this long after it was stored lost its job (the server died
# between storing and queueing); the sweep queues it again.
UNQUEUED_AFTER_S = 120.0
SWEEP_INTERVAL_S = 60.0
# Work folders older than this belong to jobs of a process that died (other worker
# processes may share the folder, so only what no live job could still use goes).
STALE_WORK_S = 6 * 3600.0


def variant_key(media_id: uuid.UUID, variant: str) -> str:
    """Where a variant lives: fixed per media and variant, so a replay overwrites it."""
    return f"variants/{media_id.hex[:2]}/{media_id}/{variant}"


async def bytes_chunks(data: bytes) -> AsyncIterator[bytes]:
    """The data as a stream of one chunk (what the blob store takes)."""
    yield data


async def file_chunks(path: Path) -> AsyncIterator[bytes]:
    """A file's bytes as a stream, read in a thread."""
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, READ_CHUNK):
            yield chunk
    finally:
        await asyncio.to_thread(handle.close)


class MediaWorker:
    def __init__(self, settings: Settings, db: Database, blobs: BlobStore, realtime: Realtime,
                 queue: JobQueue) -> None:
        self.settings = settings
        self.db = db
        self.blobs = blobs
        self.realtime = realtime
        self.queue = queue
        self.work_dir = settings.data_dir / "tmp" / "media"
        self._image_slots = asyncio.Semaphore(settings.media_image_concurrency)
        self._video_slots = asyncio.Semaphore(settings.media_video_concurrency)
        self._sweeper = Periodic(self._sweep, SWEEP_INTERVAL_S, name="media-sweeper", log=log,
                                 failed="media sweep failed", quiet=(QueueUnavailable,))
        # Pillow's own guard is process-wide; it matches the explicit check made per image.
        Image.MAX_IMAGE_PIXELS = settings.limits.image_max_pixels

    async def start(self) -> None:
        await asyncio.to_thread(clear_stale_work, self.work_dir, STALE_WORK_S)
        self._sweeper.start()

    async def stop(self) -> None:
        await self._sweeper.stop()

    async def handle(self, job: dict[str, Any]) -> None:
        """Process one upload; a permanent failure is recorded, not raised."""
        if job.get("type") != PROCESS_JOB:
            raise ValueError(f"unknown media job type {job.get('type')!r}")
        media_id = uuid.UUID(str(job["media_id"]))
        # Also moves an upload whose server died before marking it queued.
        media = await media_store.mark_processing(self.db, media_id)
        if media is None:
            log.info("media job for a deleted upload", extra={"media_id": str(media_id)})
            return
        if media.status == "processing":
            try:
                media = await self._process(media)
            except Rejected as exc:
                log.info("media failed", extra={"media_id": str(media_id), "reason": exc.reason,
                                                "detail": exc.detail})
                media = await media_store.mark_failed(self.db, media_id, exc.reason)
        # Announced again on a redelivery: the first announcement may be what was lost.
        if media is not None:
            await self.announce(media)

    async def announce(self, media: Media) -> None:
        """Tell the owner's devices the outcome, with the same body as GET /v1/media/{id}."""
        if media.status not in ("ready", "failed"):
            return
        renditions = await media_store.renditions(self.db, media.id)
        payload = MediaOut.of(media, renditions).model_dump(mode="json")
        await self.realtime.send_to_user(media.owner_id, f"media.{media.status}", payload)

    async def _process(self, media: Media) -> Media | None:
        work = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=f"{media.id}-",
                                            dir=self.work_dir))
        try:
            source = await self._original(media, work)
            if media.kind == "image":
                return await self._image(media, source)
            return await self._video(media, source, work)
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)

    async def _original(self, media: Media, work: Path) -> Path:
        """A local file with the original: the store's own file, or a copy of it."""
        path = self.blobs.local_path(media.storage_key)
        if path is not None:
            if not await asyncio.to_thread(path.is_file):
                raise Rejected("original_missing", media.storage_key)
            return path
        try:
            reader = await self.blobs.open(media.storage_key)
        except BlobNotFound:
            raise Rejected("original_missing", media.storage_key) from None
        copy = work / "original"
        handle = await asyncio.to_thread(copy.open, "wb")
        try:
            async for chunk in reader.chunks():
                await asyncio.to_thread(handle.write, chunk)
        finally:
            await asyncio.to_thread(handle.close)
            await reader.close()
        return copy

    async def _image(self, media: Media, source: Path) -> Media | None:
        async with self._image_slots:
            result = await asyncio.to_thread(process_image, source, media.content_type,
                                             self.settings.limits.image_max_pixels)
        made = [await self._put(media.id, out) for out in result.outputs]
        return await media_store.mark_ready(self.db, media.id, width=result.width,
                                            height=result.height, duration_ms=None,
                                            blurhash=result.blurhash, made=made)

    async def _video(self, media: Media, source: Path, work: Path) -> Media | None:
        timeout = self.settings.media_ffmpeg_timeout_s
        limit_s = self.settings.limits.video_max_duration_s
        poster, mp4 = work / "poster.jpg", work / "video.mp4"
        async with self._video_slots:
            probe = await media_video.probe(source, timeout)
            if probe.duration_ms is not None and probe.duration_ms > limit_s * 1000:
                raise Rejected("too_long", f"{probe.duration_ms / 1000:.1f} s > {limit_s} s")
            await media_video.poster(source, poster, probe.duration_ms, timeout)
            await media_video.transcode(source, mp4, timeout)
            rendition = await media_video.probe_output(mp4, timeout)
        stills: ImageResult = await asyncio.to_thread(video_stills, poster)
        made = [await self._put(media.id, out) for out in stills.outputs]
        made.append(await self._put_file(media.id, "mp4", mp4, "video/mp4", rendition))
        return await media_store.mark_ready(
            self.db, media.id, width=probe.width, height=probe.height,
            duration_ms=probe.duration_ms if probe.duration_ms is not None
            else rendition.duration_ms, blurhash=stills.blurhash, made=made)

    async def _put(self, media_id: uuid.UUID, out: Output) -> Rendition:
        key = variant_key(media_id, out.variant)
        info = await self.blobs.put(key, bytes_chunks(out.data), RENDITION_MAX_BYTES)
        return Rendition(variant=out.variant, storage_key=key, content_type=out.content_type,
                         width=out.width, height=out.height, size_bytes=info.size)

    async def _put_file(self, media_id: uuid.UUID, variant: str, path: Path, content_type: str,
                        probe: media_video.Probe) -> Rendition:
        key = variant_key(media_id, variant)
        try:
            info = await self.blobs.put(key, file_chunks(path), RENDITION_MAX_BYTES)
        except BlobTooLarge:
            raise Rejected("ffmpeg_failed", "the rendition is larger than allowed") from None
        return Rendition(variant=variant, storage_key=key, content_type=content_type,
                         width=probe.width, height=probe.height, size_bytes=info.size)

    async def requeue_unqueued(self, older_than_s: float = UNQUEUED_AFTER_S) -> int:
        """Queue jobs for uploads that never got one; how many were queued."""
        return await requeue(self.queue, QUEUE, await media_store.unqueued(self.db, older_than_s),
                             process_job, partial(media_store.mark_processing, self.db))

    async def _sweep(self) -> None:
        if queued := await self.requeue_unqueued():
            log.warning("queued media that had no job", extra={"count": queued})


async def start_media_worker(settings: Settings, queue: JobQueue, db: Database,
                             bus: Bus) -> MediaWorker:
    """The worker with its own blob store and a Realtime that only publishes to the bus."""
    blobs = LocalBlobStore(settings.media_dir)
    await blobs.open_store()
    worker = MediaWorker(settings, db, blobs, Realtime(bus), queue)
    await worker.start()
    # Each job holds at most a few originals in memory; the semaphores bound the CPU work.
    await queue.consume(QUEUE, worker.handle,
                        prefetch=2 * (settings.media_image_concurrency
                                      + settings.media_video_concurrency))
    return worker
