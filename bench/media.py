"""Media benchmark: images processed per second by the media worker with RabbitMQ in the loop,
against the same Pillow work called directly in a loop.

    .venv/bin/python -m bench.media [--quick] [--count N] [--size WxH] [--repeat N] [--docs PATH]

One process, on a fresh PostgreSQL database and a unique RabbitMQ and Redis namespace.
The photos are camera-like JPEGs (noise and gradients, EXIF with an orientation and
GPS) of one size. The baseline decodes, turns upright, strips, re-encodes and makes both
thumbnails and the blurhash of each photo with workers/media_images.process_image in a
plain loop. The worker runs as in production (start_media_worker: durable queue,
publisher confirms, manual acks, blobs in a local folder, rows in PostgreSQL, media.ready
over Redis) at image concurrency 1 and at the default; each run is timed from the first
publish to the last media.ready event. The three runs alternate --repeat times, so a
change in the machine's load touches them alike; the median is shown. Prints a table and,
for full runs, writes
docs/benchmarks-media.md. Everything it creates is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import secrets
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from PIL import Image

from bench import report
from bench.common import log
from bench.servers import (
    AMQP_URL,
    REDIS_URL,
    ROOT,
    create_database,
    drop_database,
    drop_queues,
    drop_redis_keys,
    run_cleanup,
)
from channels.bus import RedisBus
from config import Limits, Settings
from jobs.media import QUEUE as MEDIA_QUEUE
from jobs.media import process_job
from jobs.queue import AmqpQueue
from storage import media as media_store
from storage.blobs import LocalBlobStore
from storage.db import Database
from storage.migrate import migrate
from workers.media import start_media_worker
from workers.media_images import process_image

DOCS = ROOT / "docs" / "benchmarks-media.md"
PIXEL_LIMIT = Limits().image_max_pixels


@dataclass(frozen=True)
class Sizes:
    count: int
    width: int
    height: int
    warmup: int
    repeat: int


FULL = Sizes(count=20, width=4000, height=3000, warmup=2, repeat=3)
QUICK = Sizes(count=8, width=1600, height=1200, warmup=1, repeat=1)


@dataclass(frozen=True)
class Run:
    label: str
    images: int
    wall_s: float
    cpu_s: float  # this process's CPU in the window (the worker runs in it)

    @property
    def per_s(self) -> float:
        return self.images / self.wall_s


def photo(width: int, height: int) -> bytes:
    """A camera-like JPEG: texture that does not compress away, EXIF orientation 6 and GPS."""
    noise = Image.effect_noise((max(1, width // 4), max(1, height // 4)), 60).resize(
        (width, height)).convert("L")
    gradient = Image.linear_gradient("L").resize((width, height))
    img = Image.merge("RGB", (noise, gradient, gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "BenchCam"
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90, exif=exif)
    return out.getvalue()


def direct(path: Path, sizes: Sizes) -> Run:
    """The baseline: the worker's Pillow work on the same photo, one after another."""
    for _ in range(sizes.warmup):
        process_image(path, "image/jpeg", PIXEL_LIMIT)
    cpu, started = time.process_time(), time.perf_counter()
    for _ in range(sizes.count):
        process_image(path, "image/jpeg", PIXEL_LIMIT)
    return Run("Pillow work called directly in a loop", sizes.count,
               time.perf_counter() - started, time.process_time() - cpu)


class Arrivals:
    """media.ready / media.failed events for the benchmark's user, counted as they come."""

    def __init__(self) -> None:
        self.ready = 0
        self.failed = 0
        self._changed = asyncio.Event()

    async def listener(self, message: dict[str, Any]) -> None:
        if message.get("event") == "media.ready":
            self.ready += 1
        elif message.get("event") == "media.failed":
            self.failed += 1
        self._changed.set()

    async def reach(self, total: int, timeout_s: float = 600.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.ready + self.failed < total:
            self._changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"only {self.ready + self.failed} of {total} images done")
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                continue


@dataclass
class Rig:
    dsn: str
    namespace: str
    data_dir: Path
    db: Database
    blobs: LocalBlobStore
    owner: uuid.UUID
    original: bytes
    arrivals: Arrivals
    redis: aioredis.Redis


async def stored_uploads(rig: Rig, count: int) -> list[uuid.UUID]:
    """Originals in the blob store and their rows, as POST /v1/media leaves them."""
    ids = []
    for _ in range(count):
        media_id = uuid.uuid4()
        key = f"originals/{media_id.hex[:2]}/{media_id}"

        async def content() -> Any:
            yield rig.original

        info = await rig.blobs.put(key, content(), len(rig.original))
        await media_store.insert_media(
            rig.db, media_id=media_id, owner_id=rig.owner, kind="image", content_type="image/jpeg",
            size_bytes=info.size, sha256=info.sha256, storage_key=key, status="processing")
        ids.append(media_id)
    return ids


async def through_worker(rig: Rig, sizes: Sizes, concurrency: int) -> Run:
    settings = Settings(database_url=rig.dsn, redis_url=REDIS_URL, amqp_url=AMQP_URL,
                        namespace=rig.namespace, data_dir=rig.data_dir,
                        media_image_concurrency=concurrency, jwt_secret="b" * 40)
    queue = AmqpQueue(AMQP_URL, rig.namespace)
    await queue.connect()
    bus = RedisBus(rig.redis, rig.namespace, f"bench-worker-{concurrency}")
    await bus.start()
    worker = await start_media_worker(settings, queue, rig.db, bus)
    try:
        warm = await stored_uploads(rig, sizes.warmup)
        done = rig.arrivals.ready + rig.arrivals.failed
        for media_id in warm:
            await queue.publish(MEDIA_QUEUE, process_job(media_id))
        await rig.arrivals.reach(done + len(warm))
        measured = await stored_uploads(rig, sizes.count)
        done = rig.arrivals.ready + rig.arrivals.failed
        cpu, started = time.process_time(), time.perf_counter()
        for media_id in measured:
            await queue.publish(MEDIA_QUEUE, process_job(media_id))
        await rig.arrivals.reach(done + len(measured))
        wall, used = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await queue.close()
        await worker.stop()
        await bus.close()
    return Run(f"media worker, RabbitMQ in the loop, {concurrency} image(s) at a time",
               sizes.count, wall, used)


async def run(sizes: Sizes) -> list[list[Run]]:
    namespace = f"mbench{secrets.token_hex(4)}"
    db_name = f"hotspot_mbench_{secrets.token_hex(4)}"
    work = Path(tempfile.mkdtemp(prefix="hotspot-mbench-"))
    steps: list[tuple[str, Any]] = [(f"remove {work}", lambda: shutil.rmtree(work, True))]
    try:
        dsn = await create_database(db_name)
        steps.append((f"drop database {db_name}", lambda: drop_database(db_name)))
        steps.append((f"delete RabbitMQ queues {namespace}.*", lambda: drop_queues(namespace)))
        steps.append((f"delete Redis keys {namespace}:*", lambda: drop_redis_keys(namespace)))
        await migrate(dsn)
        db = await Database.connect(dsn, 2, 10)
        steps.insert(0, ("close the database pool", db.close))
        owner = await db.pool.fetchval(
            """INSERT INTO users (username, email, display_name)
               VALUES ('mbench', 'mbench@bench.local', 'Bench') RETURNING id""")
        client = aioredis.from_url(REDIS_URL)
        steps.insert(0, ("close Redis", client.aclose))
        listener = RedisBus(client, namespace, "bench-listener")
        await listener.start()
        steps.insert(0, ("close the listening bus", listener.close))
        arrivals = Arrivals()
        await listener.subscribe(f"user:{owner}", arrivals.listener)
        log(f"making a {sizes.width}x{sizes.height} photo")
        original = photo(sizes.width, sizes.height)
        path = work / "photo.jpg"
        path.write_bytes(original)
        blobs = LocalBlobStore(work / "var" / "media")
        await blobs.open_store()
        rig = Rig(dsn, namespace, work / "var", db, blobs, owner, original, arrivals, client)
        concurrencies = list(dict.fromkeys((1, Settings().media_image_concurrency)))
        runs: list[list[Run]] = [[] for _ in range(1 + len(concurrencies))]
        for round_ in range(1, sizes.repeat + 1):
            log(f"round {round_}/{sizes.repeat}: {sizes.count} photos through process_image")
            runs[0].append(await asyncio.to_thread(direct, path, sizes))
            for n, concurrency in enumerate(concurrencies, 1):
                log(f"round {round_}/{sizes.repeat}: {sizes.count} photos through the worker, "
                    f"{concurrency} at a time")
                runs[n].append(await through_worker(rig, sizes, concurrency))
        if arrivals.failed:
            raise RuntimeError(f"{arrivals.failed} images failed to process")
        return runs
    finally:
        await run_cleanup(steps)
        log("cleaned up: database dropped, queues, Redis keys and files removed")


def cells(runs: list[list[Run]]) -> list[list[str]]:
    """One row per path: median images/s and CPU per image over its repeats."""
    base = statistics.median(r.per_s for r in runs[0])
    out = [["path", "images", "images/s", "CPU ms per image", "ratio to the direct loop"]]
    for repeats in runs:
        first = repeats[0]
        per_s = statistics.median(r.per_s for r in repeats)
        cpu_ms = statistics.median(r.cpu_s * 1000 / r.images for r in repeats)
        out.append([first.label, str(first.images), f"{per_s:.2f}", f"{cpu_ms:.0f}",
                    f"{per_s / base:.2f}"])
    return out


def write_docs(path: Path, table: list[list[str]], sizes: Sizes, command: str, load: str) -> None:
    machine = report.machine()
    text = f"""# Media benchmark

Made by `{command}` on {datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
({", ".join(f"{k}: {v}" for k, v in machine.items())}; load average before the run: {load}).

{report.markdown_table(table)}

Each row processes the same {sizes.width}x{sizes.height} camera-like JPEG {sizes.count} times
(after {sizes.warmup} warm-up images); the three runs alternate {sizes.repeat} times and each
cell is the median. The work: decode (under the pixel limit), turn upright by its
EXIF orientation, re-encode without metadata, a 1280 and a 320 px thumbnail, a blurhash.

- **direct loop** (the baseline): `workers.media_images.process_image` called in a plain
  loop in one thread: the Pillow work alone, nothing stored.
- **media worker**: the production path minus the upload: originals already in the blob
  store and their rows in PostgreSQL, then one `media.process` job per image published
  to RabbitMQ with publisher confirms; the worker (same process) consumes with manual
  acks, runs the Pillow work in threads (`HOTSPOT_MEDIA_IMAGE_CONCURRENCY` at a time),
  writes three blobs (fsynced) and the rows in one transaction, and sends `media.ready`
  over Redis. Timed from the first publish to the last `media.ready` received.
- CPU is this process's (user + system, all threads); PostgreSQL, Redis and RabbitMQ
  are not counted.

Reading the ratios: at concurrency 1 one photo is in Pillow at a time, but the blob
writes (hashed, fsynced), the database and the queue of one photo overlap with the
Pillow work of the next, so the queue path costs little next to the Pillow work (the
extra CPU per image is what it costs). At concurrency 2, Pillow releases the GIL while
it decodes, resizes and encodes, so two photos can be worked on at once, which pays only
with a spare core:
this machine has {os.cpu_count()}, shared with whatever else ran (see the load average). More
worker processes consume the same queue in parallel.
"""
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.media",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small, fast run (smoke check)")
    parser.add_argument("--count", type=int, help="photos per measured run")
    parser.add_argument("--size", help="photo size, WIDTHxHEIGHT")
    parser.add_argument("--repeat", type=int, help="rounds of the three runs (medians shown)")
    parser.add_argument("--docs", type=Path, help=f"write the markdown here (full runs: {DOCS})")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    width, height = sizes.width, sizes.height
    if args.size:
        width, height = (int(v) for v in args.size.lower().split("x", 1))
    sizes = Sizes(count=args.count or sizes.count, width=width, height=height,
                  warmup=sizes.warmup, repeat=args.repeat or sizes.repeat)
    load = report.machine_load_warning(log)
    try:
        runs = asyncio.run(run(sizes))
    except KeyboardInterrupt:
        log("interrupted; everything the run created was removed")
        return 130
    table = cells(runs)
    print(report.text_table(table))
    docs = args.docs if args.docs is not None else (None if args.quick else DOCS)
    if docs is not None:
        command = ".venv/bin/python -m bench.media " + shlex.join(
            sys.argv[1:] if argv is None else argv)
        write_docs(docs, table, sizes, command.strip(), load)
        log(f"wrote {docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
