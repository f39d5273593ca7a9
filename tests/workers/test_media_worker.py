"""The media worker with RabbitMQ in the loop, on real images and videos made by the tests.

Uploads go through POST /v1/media; the worker runs in-process on the test's RabbitMQ
namespace; outcomes are read over REST, from the variants' bytes, and from the live
media.ready / media.failed events on the owner's socket.
"""

from __future__ import annotations

import asyncio
import io
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import pytest
import socketio
from PIL import Image

from config import Limits, Settings
from jobs.media import QUEUE as MEDIA_QUEUE
from jobs.media import process_job
from server.resources import QUEUE, SERVICES
from storage import media as media_store
from storage.views.media import MediaInfo
from tests import media_files
from tests.conftest import (
    AMQP_URL,
    Account,
    AppFactory,
    SocketFactory,
    free_port,
    process_env,
    signup,
)
from tests.handlers.conversation_helpers import make_group
from tests.handlers.media_helpers import (
    MP4,
    blob_files,
    error,
    iso_bmff,
    original,
    send,
    settled,
    sql,
    upload,
    uploaded,
)
from workers.media import MediaWorker, variant_key
from workers.media_strip import strip_png, strip_webp

# -- helpers --------------------------------------------------------------------------------


class Inbox:
    """The media events one socket received."""

    def __init__(self, sio: socketio.AsyncClient) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        for name in ("media.ready", "media.failed"):
            sio.on(name, handler=self._keep(name))

    def _keep(self, name: str) -> Any:
        async def keep(data: dict[str, Any]) -> None:
            self.events.append((name, data))

        return keep

    def of(self, media_id: str) -> list[tuple[str, dict[str, Any]]]:
        return [(name, data) for name, data in self.events if data["id"] == media_id]

    async def wait(self, media_id: str, count: int = 1, timeout: float = 30.0) -> tuple[str, dict[str, Any]]:
        """The count-th event about this media (waiting for it)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.of(media_id)) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no media event #{count} for {media_id}: {self.events}")
            await asyncio.sleep(0.02)
        return self.of(media_id)[count - 1]


async def inbox(connect_socket: SocketFactory, account: Account, target: Any = None) -> Inbox:
    sio = await connect_socket(account.access_token, target=target)
    return Inbox(sio)


async def fetch(client: Any, account: Account, url: str) -> bytes:
    resp = await client.get(url, headers=account.headers)
    assert resp.status == 200, (url, resp.status, await resp.text())
    return await resp.read()


def picture(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def close_to(color: Any, expected: tuple[int, int, int]) -> bool:
    return all(abs(a - b) < 40 for a, b in zip(color[:3], expected, strict=True))


def sizes(media: dict[str, Any]) -> dict[str, tuple[str, int, int]]:
    return {name: (v["content_type"], v["width"], v["height"])
            for name, v in media["variants"].items()}


async def fetchval(settings: Settings, query: str, *args: Any) -> Any:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def rendition_rows(settings: Settings, media_id: str) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch("SELECT * FROM media_renditions WHERE media_id = $1 ORDER BY variant",
                                uuid.UUID(media_id))
    finally:
        await conn.close()
    return [tuple(r) for r in rows]


# -- images ---------------------------------------------------------------------------------


async def test_photo_is_turned_upright_stripped_and_thumbnailed(
    client: Any, account: Account, connect_socket: SocketFactory
) -> None:
    box = await inbox(connect_socket, account)
    # Stored sideways (orientation 6) with GPS, camera model, an ICC profile and a comment.
    data = media_files.jpeg(2000, 1000, orientation=6, icc=True)
    media = await uploaded(client, account, data)
    event, ready = await box.wait(media["id"])
    assert event == "media.ready"
    MediaInfo.model_validate(ready)
    assert ready == await (await client.get(f"/v1/media/{media['id']}",
                                            headers=account.headers)).json()
    assert (ready["status"], ready["width"], ready["height"]) == ("ready", 1000, 2000)
    assert isinstance(ready["blurhash"], str) and len(ready["blurhash"]) >= 20
    assert ready["failure_reason"] is None
    assert sizes(ready) == {"full": ("image/jpeg", 1000, 2000),
                            "thumb_1280": ("image/jpeg", 640, 1280),
                            "thumb_320": ("image/jpeg", 160, 320)}
    for name, variant in ready["variants"].items():
        raw = await fetch(client, account, variant["url"])
        assert variant["size_bytes"] == len(raw)
        img = picture(raw)
        assert img.size == (variant["width"], variant["height"]), name
        assert not img.getexif(), name
        assert not {"exif", "icc_profile", "comment", "xmp"} & set(img.info), (name, img.info)
        assert b"PhoneMaker" not in raw and b"shot at home" not in raw
        # The red left half of the stored picture is on top once upright.
        assert close_to(img.getpixel((img.width // 2, img.height // 10)), media_files.RED), name
        assert close_to(img.getpixel((img.width // 2, img.height * 9 // 10)), media_files.BLUE)
    # The plain URL serves the stripped copy; the uploader still has the original.
    assert await fetch(client, account, media["url"]) == await fetch(
        client, account, ready["variants"]["full"]["url"])
    kept = picture(await fetch(client, account, original(media)))
    assert kept.getexif().get_ifd(0x8825)  # the GPS block is still in the original
    assert box.of(media["id"]) == [("media.ready", ready)]


async def test_small_images_get_no_upscaled_thumbnails_and_alpha_thumbnails_are_webp(
    client: Any, account: Account
) -> None:
    small = await uploaded(client, account, media_files.png(200, 150, alpha=True))
    medium = await uploaded(client, account, media_files.png(600, 400, alpha=True))
    exact = await uploaded(client, account, media_files.jpeg(320, 200))
    small, medium, exact = [await settled(client, account, m["id"])
                            for m in (small, medium, exact)]
    assert sizes(small) == {"full": ("image/png", 200, 150)}
    assert sizes(medium) == {"full": ("image/png", 600, 400),
                             "thumb_320": ("image/webp", 320, 213)}
    # Exactly 320 on the long side: a 320 thumbnail would be the same picture again.
    assert sizes(exact) == {"full": ("image/jpeg", 320, 200)}
    full = picture(await fetch(client, account, medium["variants"]["full"]["url"]))
    assert full.mode == "RGBA"
    assert "Comment" not in full.info and not full.getexif()
    thumb = picture(await fetch(client, account, medium["variants"]["thumb_320"]["url"]))
    assert thumb.mode == "RGBA"


async def test_animated_gif_keeps_its_frames_without_its_comment(
    client: Any, account: Account
) -> None:
    data = media_files.gif_animation(400, 300, frames=3)
    assert picture(data).info["comment"]
    media = await settled(client, account, (await uploaded(client, account, data))["id"])
    assert sizes(media) == {"full": ("image/gif", 400, 300), "thumb_320": ("image/jpeg", 320, 240)}
    full = picture(await fetch(client, account, media["variants"]["full"]["url"]))
    assert getattr(full, "n_frames", 1) == 3
    assert "comment" not in full.info
    assert full.info["loop"] == 0


@pytest.mark.parametrize("image_format", ["WEBP", "PNG"])
def test_animation_strippers_keep_frames_and_drop_metadata(image_format: str) -> None:
    frames = [media_files.two_tone(60, 40, "RGBA").rotate(angle) for angle in (0, 90, 180)]
    out = io.BytesIO()
    frames[0].save(out, image_format, save_all=True, append_images=frames[1:], duration=80,
                   exif=media_files.camera_exif(), icc_profile=b"")
    data = out.getvalue()
    assert b"PhoneMaker" in data
    stripped = (strip_webp if image_format == "WEBP" else strip_png)(data)
    assert b"PhoneMaker" not in stripped
    img = picture(stripped)
    assert getattr(img, "n_frames", 1) == 3 and img.size == (60, 40)
    assert not img.getexif()
    with pytest.raises(ValueError):
        (strip_webp if image_format == "WEBP" else strip_png)(data[:len(data) // 2])


# -- videos ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("container", "content_type"), [
    ("mp4", "video/mp4"), ("webm", "video/webm"), ("mov", "video/quicktime"),
])
async def test_video_gets_a_poster_and_an_h264_aac_mp4_without_its_metadata(
    client: Any, account: Account, connect_socket: SocketFactory, tmp_path: Path,
    container: str, content_type: str,
) -> None:
    box = await inbox(connect_socket, account)
    data = media_files.video(tmp_path, container=container)
    media = await uploaded(client, account, data)
    assert media["content_type"] == content_type
    event, ready = await box.wait(media["id"])
    assert event == "media.ready", ready
    MediaInfo.model_validate(ready)
    assert (ready["width"], ready["height"]) == (320, 240)
    assert 1900 <= ready["duration_ms"] <= 2100
    assert ready["blurhash"]
    assert sizes(ready) == {"poster": ("image/jpeg", 320, 240), "mp4": ("video/mp4", 320, 240)}
    poster = picture(await fetch(client, account, ready["variants"]["poster"]["url"]))
    assert poster.format == "JPEG" and poster.size == (320, 240)
    rendition = await fetch(client, account, ready["variants"]["mp4"]["url"])
    assert await fetch(client, account, media["url"]) == rendition
    described = media_files.describe(rendition, tmp_path, "rendition.mp4")
    assert "Video: h264" in described and "Audio: aac" in described
    assert "secret title" not in described and "+48.8584" not in described
    # Seeking works on the rendition.
    resp = await client.get(media["url"], headers={**account.headers, "Range": "bytes=0-99"})
    assert resp.status == 206 and len(await resp.read()) == 100
    assert "secret title" in media_files.describe(
        await fetch(client, account, original(media)), tmp_path, f"original.{container}")


async def test_rotated_large_video_is_shown_upright_within_1280(
    client: Any, account: Account, tmp_path: Path
) -> None:
    data = media_files.video(tmp_path, size="1920x1080", seconds=1, rotate=90)
    media = await settled(client, account, (await uploaded(client, account, data))["id"])
    assert media["status"] == "ready", media
    assert (media["width"], media["height"]) == (1080, 1920)
    assert sizes(media) == {"poster": ("image/jpeg", 720, 1280), "mp4": ("video/mp4", 720, 1280),
                            "thumb_320": ("image/jpeg", 180, 320)}


# -- failures -------------------------------------------------------------------------------


def truncated_jpeg() -> bytes:
    data = media_files.jpeg(800, 600)
    return data[:len(data) // 2]


@pytest.mark.parametrize(("make", "reason"), [
    (lambda work: media_files.png_bomb(), "decompression_bomb"),
    (lambda work: truncated_jpeg(), "corrupt"),
    (lambda work: b"\xff\xd8\xff" + b"this is really a text file\n" * 20, "corrupt"),
    (lambda work: media_files.png(40, 40)[:8] + b"\x00" * 200, "corrupt"),
    (lambda work: MP4, "corrupt"),
    (lambda work: media_files.video(work, video_stream=False), "no_video"),
], ids=["png-bomb", "truncated-jpeg", "jpeg-magic-text", "png-magic-junk", "fake-mp4", "audio-only"])
async def test_bad_files_fail_with_a_reason_and_the_job_is_not_retried(
    client: Any, account: Account, connect_socket: SocketFactory, settings: Settings,
    tmp_path: Path, make: Any, reason: str,
) -> None:
    box = await inbox(connect_socket, account)
    media = await uploaded(client, account, make(tmp_path))
    event, failed = await box.wait(media["id"])
    assert event == "media.failed"
    MediaInfo.model_validate(failed)
    assert failed["status"] == "failed"
    assert failed["failure_reason"] == reason
    assert failed["failure_message"]
    assert failed["variants"] == {}
    assert await rendition_rows(settings, media["id"]) == []
    # Nothing but the original was written.
    media_id = uuid.UUID(media["id"])
    assert not (settings.media_dir / variant_key(media_id, "full")).parent.exists()
    # The uploader may still look at what they sent; it cannot be sent on.
    assert (await client.get(media["url"], headers=account.headers)).status == 200
    other = await signup(client)
    conversation_id = await make_group(settings, account, other)
    resp = await send(client, account, conversation_id, [media["id"]])
    assert error(await resp.json()) == ("invalid_input", ["media_failed"])
    # Acked once: no retry is waiting and nothing was dead-lettered.
    await asyncio.sleep(0.2)
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        base = f"{settings.namespace}.{MEDIA_QUEUE}"
        for name in (base, f"{base}.retry.1", f"{base}.dead"):
            queue = await channel.declare_queue(name, durable=True, passive=True)
            assert queue.declaration_result.message_count == 0, name
    assert len(box.of(media["id"])) == 1


# Pillow's own guard (set from the same limit) warns first; the worker refuses.
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
async def test_pixel_limit_fails_images_pillow_alone_would_decode(
    make_client: AppFactory, settings: Settings
) -> None:
    client = await make_client(limits=Limits(image_max_pixels=10_000))
    alice = await signup(client)
    resp = await upload(client, alice, media_files.png(200, 100))
    assert resp.status == 202
    failed = await settled(client, alice, (await resp.json())["id"])
    assert failed["failure_reason"] == "decompression_bomb"


async def test_videos_past_the_length_limit_fail(
    make_client: AppFactory, tmp_path: Path
) -> None:
    client = await make_client(limits=Limits(video_max_duration_s=1))
    alice = await signup(client)
    media = await uploaded(client, alice, media_files.video(tmp_path, seconds=2))
    assert (await settled(client, alice, media["id"]))["failure_reason"] == "too_long"


async def test_an_ffmpeg_run_past_its_time_limit_fails_the_video(
    make_client: AppFactory, tmp_path: Path
) -> None:
    client = await make_client(media_ffmpeg_timeout_s=0.001)
    alice = await signup(client)
    media = await uploaded(client, alice, media_files.video(tmp_path, seconds=1))
    assert (await settled(client, alice, media["id"]))["failure_reason"] == "timeout"


async def test_a_text_file_named_jpg_is_refused_at_upload(
    client: Any, account: Account, settings: Settings
) -> None:
    resp = await upload(client, account, b"Dear diary, today...\n" * 50, "holiday.jpg", "image/jpeg")
    assert resp.status == 400
    assert error(await resp.json()) == ("invalid_input", ["unsupported_media_type"])
    assert blob_files(settings) == []
    assert await fetchval(settings, "SELECT count(*) FROM media WHERE owner_id = $1",
                          uuid.UUID(account.id)) == 0


async def test_upload_is_refused_and_nothing_kept_when_the_queue_is_down(
    make_client: AppFactory, settings: Settings
) -> None:
    node = await make_client(amqp_url=f"amqp://guest:guest@127.0.0.1:{free_port()}/")
    alice = await signup(node)
    resp = await upload(node, alice, media_files.jpeg())
    assert resp.status == 503
    body = await resp.json()
    assert body["error"]["code"] == "unavailable"
    assert body["error"]["details"] == {"accepted": False}
    assert blob_files(settings) == []
    assert await fetchval(settings, "SELECT count(*) FROM media WHERE owner_id = $1",
                          uuid.UUID(alice.id)) == 0


# -- redelivery, retries, lost jobs ---------------------------------------------------------


def stored_variants(settings: Settings, media_id: str) -> dict[str, bytes]:
    folder = (settings.media_dir / variant_key(uuid.UUID(media_id), "x")).parent
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


async def test_a_redelivered_job_gives_the_same_result(
    client: Any, account: Account, connect_socket: SocketFactory, settings: Settings
) -> None:
    box = await inbox(connect_socket, account)
    media = await uploaded(client, account, media_files.jpeg(1600, 900, orientation=3))
    _, first = await box.wait(media["id"])
    rows, files = await rendition_rows(settings, media["id"]), stored_variants(settings, media["id"])
    assert sorted(files) == ["full", "thumb_1280", "thumb_320"]
    queue = client.app[QUEUE]
    media_id = uuid.UUID(media["id"])
    # Delivered again after the outcome was stored: announced again, nothing redone.
    await queue.publish(MEDIA_QUEUE, process_job(media_id))
    assert (await box.wait(media["id"], count=2))[1] == first
    # Delivered again after a crash before the commit: redone over the same keys and rows.
    await sql(settings, "UPDATE media SET status = 'processing' WHERE id = $1", media_id)
    await queue.publish(MEDIA_QUEUE, process_job(media_id))
    _, third = await box.wait(media["id"], count=3)
    assert third["status"] == "ready" and third["variants"] == first["variants"]
    assert await rendition_rows(settings, media["id"]) == rows
    assert stored_variants(settings, media["id"]) == files
    assert len(blob_files(settings)) == 1 + len(files)


async def test_a_transient_failure_is_retried_by_the_queue(
    client: Any, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = media_store.mark_ready
    calls: list[int] = []

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionResetError("database went away")
        return await real(*args, **kwargs)

    monkeypatch.setattr(media_store, "mark_ready", flaky)
    media = await uploaded(client, account, media_files.jpeg())
    ready = await settled(client, account, media["id"])
    assert ready["status"] == "ready"
    assert len(calls) == 2


async def test_the_sweep_queues_uploads_whose_job_was_lost(
    client: Any, account: Account, settings: Settings
) -> None:
    media = await uploaded(client, account, media_files.jpeg(800, 600))
    before = await settled(client, account, media["id"])
    media_id = uuid.UUID(media["id"])
    # As if the server died between storing the upload and queueing its job.
    await sql(settings, """UPDATE media SET status = 'uploaded', width = NULL, height = NULL,
                                  blurhash = NULL, created_at = now() - interval '1 hour'
                           WHERE id = $1""", media_id)
    await sql(settings, "DELETE FROM media_renditions WHERE media_id = $1", media_id)
    services = client.app[SERVICES]
    worker = MediaWorker(settings, services.db, services.blobs, services.realtime, services.queue)
    assert await worker.requeue_unqueued() == 1
    after = await settled(client, account, media["id"])
    assert after["status"] == "ready" and after["variants"] == before["variants"]
    assert await worker.requeue_unqueued() == 0


async def test_video_fakes_from_the_sniffing_tests_fail_cleanly(
    client: Any, account: Account
) -> None:
    for data in (MP4, iso_bmff(b"qt  ", b"qt  ")):
        media = await uploaded(client, account, data)
        assert (await settled(client, account, media["id"]))["failure_reason"] == "corrupt"


async def test_a_separate_worker_process_serves_the_server_over_rabbitmq_and_redis(
    make_client: AppFactory, settings: Settings
) -> None:
    """`hotspot worker media` in its own process: jobs from RabbitMQ, media.ready over Redis."""
    # The only app of this test, and it runs no worker (no `client` fixture here either).
    node = await make_client(inprocess_workers=False)
    alice = await signup(node)
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(str(node.make_url("/")), auth={"token": alice.access_token},
                      transports=["websocket"], wait_timeout=5)
    box = Inbox(sio)
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "hotspot"), "worker", "media", "--port", str(free_port()),
        env=process_env(settings, HOTSPOT_LOG_LEVEL="WARNING"),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        resp = await upload(node, alice, media_files.jpeg(900, 600))
        assert resp.status == 202
        media = await resp.json()
        assert media["status"] == "processing"  # nothing in this process works on it
        event, ready = await box.wait(media["id"], timeout=60)
        assert event == "media.ready"
        assert sizes(ready) == {"full": ("image/jpeg", 900, 600),
                                "thumb_320": ("image/jpeg", 320, 213)}
        thumb = await fetch(node, alice, ready["variants"]["thumb_320"]["url"])
        assert picture(thumb).size == (320, 213)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
        await sio.disconnect()
