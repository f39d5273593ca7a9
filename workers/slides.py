"""The slides worker: renders a slide's effects, stitch or duet into a new video.

A slide.render job names a slide. The worker reads the MP4 renditions the media worker
made of the inputs (the author's upload, and for a stitch or duet the original slide's
video), builds one ffmpeg run (workers/media_effects.py), runs it with `-progress` and
tells the author's devices how far it got (slide.processing {slide_id, percent}). The
result is stored as a new ready media of the author (an mp4 and a poster, under keys
derived from the slide id, so a redelivered job rewrites the same rows and blobs), and
the slide moves to ready in the same transaction: then slide.ready {slide}.

A render that can never succeed (an input gone or unreadable, an ffmpeg failure or
overrun) fails the slide with a reason and is acked: slide.failed {slide_id, reason,
message}. Anything else (database, blob store, bus) raises, and the queue retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from channels.bus import Bus
from channels.realtime import Realtime
from config import Settings
from jobs import slide_effects
from jobs.queue import JobQueue, QueueUnavailable
from jobs.slides import QUEUE as SLIDES_QUEUE
from jobs.slides import RENDER_JOB, STITCH_MAX_MS, render_job
from storage import media as media_store
from storage import slides as store
from storage.blobs import BlobNotFound, BlobStore, BlobTooLarge, LocalBlobStore
from storage.db import Database
from storage.media import Rendition
from storage.slides import Slide
from storage.views.slides import failure_message, slide_outs
from workers import media_effects as fx
from workers import media_video
from workers.media import RENDITION_MAX_BYTES, bytes_chunks, file_chunks, variant_key
from workers.media_images import ImageResult, Rejected, video_stills
from workers.sweeps import Periodic, clear_stale_work, requeue

log = logging.getLogger(__name__)

# Progress events: one at the start, then when the percent grew by at least this much
# and at least this long after the previous one.
PROGRESS_STEP = 5
PROGRESS_INTERVAL_S = 0.5
UNQUEUED_AFTER_S = 120.0
SWEEP_INTERVAL_S = 60.0
STALE_WORK_S = 6 * 3600.0
# Renders are named by the slide: a redelivered job rewrites the same media.
RENDITION_NAMESPACE = uuid.UUID("0d7c53a4-1f55-4c8e-9f4e-5d1f3f8b6a21")


def rendition_media_id(slide_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(RENDITION_NAMESPACE, str(slide_id))


@dataclass
class Throttle:
    """Decides which progress readings become events (see PROGRESS_STEP)."""

    step: int = PROGRESS_STEP
    interval_s: float = PROGRESS_INTERVAL_S
    last: int = 0
    last_at: float = 0.0

    def due(self, percent: int, now: float) -> bool:
        if percent - self.last < self.step or now - self.last_at < self.interval_s:
            return False
        self.last, self.last_at = percent, now
        return True


def percent_of(line: str, total_ms: int) -> int | None:
    """The percent done from one `-progress` line (out_time_us=...), capped at 99; else None."""
    key, _, value = line.strip().partition("=")
    if key != "out_time_us" or not value.isdigit() or total_ms <= 0:
        return None
    return min(99, int(int(value) / 10 / total_ms))


async def run_with_progress(args: list[str], timeout_s: float, total_ms: int,
                            report: Callable[[int], Awaitable[None]]) -> None:
    """Run ffmpeg, calling report(percent) per progress reading; Rejected if it fails or overruns."""
    proc = await asyncio.create_subprocess_exec(
        media_video.ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-progress", "pipe:1",
        *args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    stdout, stderr = proc.stdout, proc.stderr

    async def follow() -> None:
        async for raw in stdout:
            percent = percent_of(raw.decode(errors="replace"), total_ms)
            if percent is not None:
                await report(percent)

    # Drained alongside stdout, so a chatty stderr never blocks ffmpeg on a full pipe.
    errors = asyncio.create_task(stderr.read())
    try:
        async with asyncio.timeout(timeout_s):
            await follow()
            await proc.wait()
            err = (await errors).decode(errors="replace")
    except TimeoutError:
        raise Rejected("timeout", f"ffmpeg ran longer than {timeout_s:g} s") from None
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        errors.cancel()
        await asyncio.gather(errors, return_exceptions=True)
    if proc.returncode != 0:
        raise Rejected("ffmpeg_failed", "render: " + err.strip()[-600:])


class _Gone(Exception):
    """The slide stopped processing while it rendered: deleted (undo the stored render), or
    made ready by a duplicate delivery of its job (keep that one's files)."""


class SlideWorker:
    def __init__(self, settings: Settings, db: Database, blobs: BlobStore, realtime: Realtime,
                 queue: JobQueue) -> None:
        self.settings = settings
        self.db = db
        self.blobs = blobs
        self.realtime = realtime
        self.queue = queue
        self.work_dir = settings.data_dir / "tmp" / "slides"
        self._slots = asyncio.Semaphore(settings.slide_render_concurrency)
        self._sweeper = Periodic(self._sweep, SWEEP_INTERVAL_S, name="slides-sweeper", log=log,
                                 failed="slides sweep failed", quiet=(QueueUnavailable,))

    async def start(self) -> None:
        await asyncio.to_thread(clear_stale_work, self.work_dir, STALE_WORK_S)
        self._sweeper.start()

    async def stop(self) -> None:
        await self._sweeper.stop()

    async def handle(self, job: dict[str, Any]) -> None:
        """Render one slide; a permanent failure is recorded and announced, not raised."""
        if job.get("type") != RENDER_JOB:
            raise ValueError(f"unknown slides job type {job.get('type')!r}")
        slide = await store.get_slide(self.db, uuid.UUID(str(job["slide_id"])))
        if slide is None or slide.deleted_at is not None:
            return
        done: Slide | None = slide
        if slide.status == "processing":
            await store.mark_queued(self.db, slide.id)
            try:
                done = await self._render(slide)
            except Rejected as exc:
                log.info("slide failed", extra={"slide_id": str(slide.id), "reason": exc.reason,
                                                "detail": exc.detail})
                done = await store.mark_failed(self.db, slide.id, exc.reason)
        # Announced again on a redelivery: the first announcement may be what was lost.
        if done is not None:
            await self.announce(done.id)

    async def announce(self, slide_id: uuid.UUID) -> None:
        """slide.ready (the slide as its author sees it) or slide.failed, to the author."""
        slide = await store.get_slide(self.db, slide_id)
        if slide is None or slide.deleted_at is not None:
            return
        if slide.status == "ready":
            mine = await store.get_visible(self.db, slide.id, slide.author_id)
            if mine is None:
                return
            [out] = await slide_outs(self.db, slide.author_id, [mine])
            await self.realtime.send_to_user(slide.author_id, "slide.ready",
                                             {"slide": out.model_dump(mode="json")})
        elif slide.status == "failed":
            reason = slide.failure_reason or "ffmpeg_failed"
            await self.realtime.send_to_user(slide.author_id, "slide.failed", {
                "slide_id": str(slide.id), "reason": reason,
                "message": failure_message(reason)})

    async def _progress(self, slide: Slide, percent: int) -> None:
        await store.set_progress(self.db, slide.id, percent)
        await self.realtime.send_to_user(slide.author_id, "slide.processing",
                                         {"slide_id": str(slide.id), "percent": percent})

    async def _render(self, slide: Slide) -> Slide | None:
        work = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=f"{slide.id}-",
                                            dir=self.work_dir))
        try:
            return await self._render_in(slide, work)
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)

    async def _render_in(self, slide: Slide, work: Path) -> Slide | None:
        timeout = self.settings.slide_ffmpeg_timeout_s
        try:
            effects = slide_effects.parse_effects(slide.effects)
        except slide_effects.EffectError as exc:
            raise Rejected("ffmpeg_failed", f"stored effects: {exc.message}") from None
        new = await self._clip(slide.source_media_id, work, "new")
        text, text_png = slide_effects.text_of(effects), None
        if text is not None and text.text and text.position:
            text_png = work / "text.png"
            png = fx.text_overlay_png(text.text, text.position, new.width, new.height)
            await asyncio.to_thread(text_png.write_bytes, png)
        out = work / "slide.mp4"
        credit = slide.credit
        if credit is None:
            plan = fx.render_plan(new, effects, out, text_png)
        else:
            # Checked again now: the original may have been deleted, or hidden from the
            # author by a block or a narrower audience, since the stitch or duet was asked for.
            if not await store.original_usable(self.db, credit.item_id, slide.author_id):
                raise Rejected("original_missing", f"original {credit.item_id} is gone or hidden")
            original = await self._clip(credit.video_media_id, work, "original")
            if credit.kind == "stitch":
                plan = fx.stitch_plan(original, credit.start_ms or 0,
                                      credit.length_ms or STITCH_MAX_MS, new, effects, out,
                                      text_png)
            else:
                plan = fx.duet_plan(original, new, "new" if credit.audio == "new" else "original",
                                    effects, out, text_png)
        throttle = Throttle(last_at=time.monotonic())
        await self._progress(slide, 0)

        async def report(percent: int) -> None:
            if throttle.due(percent, time.monotonic()):
                await self._progress(slide, percent)

        async with self._slots:
            await run_with_progress(plan.args, timeout, plan.duration_ms, report)
            made = await media_video.probe_output(out, timeout)
            poster = work / "poster.jpg"
            await media_video.poster(out, poster, made.duration_ms, timeout)
        stills: ImageResult = await asyncio.to_thread(video_stills, poster)
        return await self._store(slide, out, made, stills)

    async def _store(self, slide: Slide, out: Path, made: media_video.Probe,
                     stills: ImageResult) -> Slide | None:
        media_id = rendition_media_id(slide.id)
        key = variant_key(media_id, "mp4")
        try:
            info = await self.blobs.put(key, file_chunks(out), RENDITION_MAX_BYTES)
        except BlobTooLarge:
            raise Rejected("ffmpeg_failed", "the render is larger than allowed") from None
        renditions = [Rendition("mp4", key, "video/mp4", made.width, made.height, info.size)]
        for still in stills.outputs:
            still_key = variant_key(media_id, still.variant)
            stored = await self.blobs.put(still_key, bytes_chunks(still.data), RENDITION_MAX_BYTES)
            renditions.append(Rendition(still.variant, still_key, still.content_type, still.width,
                                        still.height, stored.size))
        duration = made.duration_ms or 0
        try:
            async with self.db.transaction() as conn:
                await store.save_rendition_media(
                    conn, media_id=media_id, owner_id=slide.author_id, key=key,
                    size_bytes=info.size, sha256=info.sha256, width=made.width,
                    height=made.height, duration_ms=duration, blurhash=stills.blurhash,
                    made=renditions)
                ready = await store.mark_ready(conn, slide.id, video_media_id=media_id,
                                               duration_ms=duration, width=made.width,
                                               height=made.height)
                if ready is None:
                    raise _Gone
        except _Gone:
            now = await store.get_slide(self.db, slide.id)
            if now is not None and now.deleted_at is None and now.video_media_id == media_id:
                # A duplicate delivery rendered it first: these keys are its video's.
                return now
            for rendition in renditions:
                await self.blobs.delete(rendition.storage_key)
            return None
        return ready

    async def _clip(self, media_id: uuid.UUID, work: Path, name: str) -> fx.Clip:
        """A local copy (or the store's own file) of a media's MP4, probed."""
        mp4 = next((r for r in await media_store.renditions(self.db, media_id)
                    if r.variant == "mp4"), None)
        if mp4 is None:
            raise Rejected("original_missing", f"media {media_id} has no mp4")
        path = self.blobs.local_path(mp4.storage_key)
        if path is None:
            path = work / f"{name}.mp4"
            try:
                reader = await self.blobs.open(mp4.storage_key)
            except BlobNotFound:
                raise Rejected("original_missing", mp4.storage_key) from None
            handle = await asyncio.to_thread(path.open, "wb")
            try:
                async for chunk in reader.chunks():
                    await asyncio.to_thread(handle.write, chunk)
            finally:
                await asyncio.to_thread(handle.close)
                await reader.close()
        elif not await asyncio.to_thread(path.is_file):
            raise Rejected("original_missing", mp4.storage_key)
        probe = await media_video.probe_output(path, self.settings.slide_ffmpeg_timeout_s)
        if not probe.duration_ms:
            raise Rejected("corrupt", f"media {media_id} has no duration")
        return fx.Clip(path, probe.width, probe.height, probe.duration_ms, probe.has_audio)

    async def requeue_unqueued(self, older_than_s: float = UNQUEUED_AFTER_S) -> int:
        """Queue render jobs for slides that never got one; how many were queued."""
        return await requeue(self.queue, SLIDES_QUEUE, await store.unqueued(self.db, older_than_s),
                             render_job, partial(store.mark_queued, self.db))

    async def _sweep(self) -> None:
        if queued := await self.requeue_unqueued():
            log.warning("queued slides that had no render job", extra={"count": queued})


async def start_slides_worker(settings: Settings, queue: JobQueue, db: Database,
                              bus: Bus) -> SlideWorker:
    """The worker with its own blob store and a Realtime that only publishes to the bus."""
    blobs = LocalBlobStore(settings.media_dir)
    await blobs.open_store()
    worker = SlideWorker(settings, db, blobs, Realtime(bus), queue)
    await worker.start()
    # Jobs beyond the render slots wait in RabbitMQ, where another worker process can take them.
    await queue.consume(SLIDES_QUEUE, worker.handle, prefetch=settings.slide_render_concurrency)
    return worker
