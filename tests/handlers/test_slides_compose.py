"""Stitches and duets over the real server: outputs checked for duration, frame size and sound;
the original's allow flags, visibility and blocks enforced; credits shown only to who may see."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from config import Settings
from handlers.slides import render_job
from server.resources import SERVICES
from tests.conftest import Account, signup
from tests.handlers.conversation_helpers import fields_of, ok, refused, rest
from tests.handlers.slide_helpers import (
    block,
    create,
    db_execute,
    finished,
    follow,
    get,
    near,
    probe_url,
    video_media,
)
from workers.media_video import run_ffmpeg
from workers.slides import SlideWorker

Client = TestClient[Any, Any]


async def original_slide(client: Client, author: Account, tmp_path: Path, **fields: Any) -> str:
    """A ready slide of 3 s at 160x120 with a tone."""
    media_id = await video_media(client, author, tmp_path, size="160x120", seconds=3)
    return str((await create(client, author, media_id, **fields))["id"])


async def made(client: Client, account: Account, command: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A stitch or duet, once rendered."""
    slide = await ok(await rest(client, account, command, payload), 201)
    assert slide["slide"]["status"] == "processing"
    done = await finished(client, account, slide["id"])
    assert done["slide"]["status"] == "ready", done["slide"]
    return done


async def mean_volume(client: Client, account: Account, url: str, work: Path) -> float:
    """The mean loudness of a video's sound in dB (about -91 for silence)."""
    resp = await client.get(url, headers=account.headers)
    path = work / f"sound-{uuid.uuid4().hex}.mp4"
    path.write_bytes(await resp.read())
    code, err = await run_ffmpeg(["-i", str(path), "-map", "0:a:0", "-af", "volumedetect",
                                  "-f", "null", "-"], 60)
    assert code == 0, err
    line = next(x for x in err.splitlines() if "mean_volume:" in x)
    return float(line.split("mean_volume:")[1].split("dB")[0])


async def test_a_stitch_starts_with_part_of_the_original_and_credits_it(
    client: Client, tmp_path: Path
) -> None:
    author, stitcher = await signup(client), await signup(client)
    source = await original_slide(client, author, tmp_path)
    media_id = await video_media(client, stitcher, tmp_path, size="120x90", seconds=2, audio=None)
    done = await made(client, stitcher, "slide.stitch", {
        "source_slide_id": source, "media_id": media_id, "start_ms": 500, "length_ms": 1500,
        "caption": "my take", "effects": [{"name": "sepia"}]})
    info = done["slide"]
    assert info["stitch_of"] == {"item_id": source, "author_id": author.id, "available": True,
                                 "start_ms": 500, "length_ms": 1500, "audio": None}
    assert info["duet_of"] is None and done["body"] == "my take"
    probe = await probe_url(client, stitcher, info["video"]["url"], tmp_path)
    # 1.5 s of the original, then the 2 s upload, in the upload's frame size; the upload
    # had no sound, so its part is silent, but the output always has a track.
    assert near(probe.duration_ms, 3500, 300) and (probe.width, probe.height) == (120, 90)
    assert probe.has_audio
    # Anyone who may see both gets the credit.
    watcher = await signup(client)
    seen = await ok(await get(client, watcher, done["id"]))
    assert seen["slide"]["stitch_of"]["item_id"] == source
    # The default length takes at most 5 s: here what is left of the 3 s original.
    media_id = await video_media(client, stitcher, tmp_path, size="120x90", seconds=1)
    longest = await made(client, stitcher, "slide.stitch", {"source_slide_id": source,
                                                            "media_id": media_id, "start_ms": 1000})
    probe = await probe_url(client, stitcher, longest["slide"]["video"]["url"], tmp_path)
    assert near(probe.duration_ms, 2000 + 1000, 300)
    assert longest["slide"]["stitch_of"]["length_ms"] == 5000


async def test_a_duet_puts_both_side_by_side_with_the_chosen_sound(
    client: Client, tmp_path: Path
) -> None:
    author, dancer = await signup(client), await signup(client)
    source = await original_slide(client, author, tmp_path)  # 160x120, a tone
    media_id = await video_media(client, dancer, tmp_path, size="120x90", seconds=2, audio="silent")
    loud = await made(client, dancer, "slide.duet", {"source_slide_id": source, "media_id": media_id})
    info = loud["slide"]
    assert info["duet_of"] == {"item_id": source, "author_id": author.id, "available": True,
                               "start_ms": None, "length_ms": None, "audio": "original"}
    probe = await probe_url(client, dancer, info["video"]["url"], tmp_path)
    # Both at the new video's height (90): 120 + 120 wide; as long as the new video.
    assert (probe.width, probe.height) == (240, 90) and near(probe.duration_ms, 2000)
    assert (info["video"]["width"], info["video"]["height"]) == (240, 90)
    assert await mean_volume(client, dancer, info["video"]["url"], tmp_path) > -40
    quiet = await made(client, dancer, "slide.duet", {"source_slide_id": source,
                                                      "media_id": media_id, "audio": "new"})
    assert quiet["slide"]["duet_of"]["audio"] == "new"
    assert await mean_volume(client, dancer, quiet["slide"]["video"]["url"], tmp_path) < -80


async def test_the_originals_flags_visibility_blocks_and_state_are_enforced(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    author, fan, stranger = [await signup(client) for _ in range(3)]
    await follow(client, fan, author)
    closed = await original_slide(client, author, tmp_path, allow_stitch=False, allow_duet=False)
    followers_only = await original_slide(client, author, tmp_path, visibility="followers")
    fan_media = await video_media(client, fan, tmp_path, size="120x90", seconds=1)
    stranger_media = await video_media(client, stranger, tmp_path, size="120x90", seconds=1)
    for command in ("slide.stitch", "slide.duet"):
        kind = command.split(".")[1]
        error = await refused(await rest(client, fan, command, {
            "source_slide_id": closed, "media_id": fan_media}), 403, "forbidden")
        assert error["details"]["reason"] == f"{kind}_not_allowed"
        await refused(await rest(client, stranger, command, {
            "source_slide_id": followers_only, "media_id": stranger_media}), 404, "not_found")
        await refused(await rest(client, fan, command, {
            "source_slide_id": str(uuid.uuid4()), "media_id": fan_media}), 404, "not_found")
    # The author's own flags do not bind the author.
    own_media = await video_media(client, author, tmp_path, size="120x90", seconds=1)
    await made(client, author, "slide.duet", {"source_slide_id": closed, "media_id": own_media})
    # A block either way hides the original.
    await block(client, fan, author)
    await refused(await rest(client, fan, "slide.stitch", {
        "source_slide_id": followers_only, "media_id": fan_media}), 404, "not_found")
    # An original still rendering (or failed) cannot be used, even by its author.
    rendering = await ok(await rest(client, author, "slide.create", {
        "media_id": own_media, "effects": [{"name": "blur"}]}), 201)
    error = await refused(await rest(client, author, "slide.duet", {
        "source_slide_id": rendering["id"], "media_id": own_media}), 409, "conflict")
    assert error["details"]["reason"] == "source_not_ready"


async def test_stitch_and_duet_refuse_bad_input(client: Client, tmp_path: Path) -> None:
    author, other = await signup(client), await signup(client)
    source = await original_slide(client, author, tmp_path)
    media_id = await video_media(client, other, tmp_path, size="120x90", seconds=1)
    base = {"source_slide_id": source, "media_id": media_id}
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("slide.stitch", {"length_ms": 5001}, "length_ms"),
        ("slide.stitch", {"length_ms": 0}, "length_ms"),
        ("slide.stitch", {"start_ms": -1}, "start_ms"),
        ("slide.stitch", {"start_ms": 3000}, "start_ms"),
        ("slide.stitch", {"audio": "new"}, "audio"),
        ("slide.stitch", {"effects": [{"name": "glitter"}]}, "effects.0.name"),
        ("slide.stitch", {"reply_to_comment_id": str(uuid.uuid4())}, "reply_to_comment_id"),
        ("slide.duet", {"audio": "both"}, "audio"),
        ("slide.duet", {"start_ms": 0}, "start_ms"),
        ("slide.duet", {"caption": "x" * 2201}, "caption"),
        ("slide.duet", {"media_id": str(uuid.uuid4())}, "media_id"),
        ("slide.duet", {"source_slide_id": "nope"}, "source_slide_id"),
    ]
    for command, change, field in cases:
        error = await refused(await rest(client, other, command, {**base, **change}),
                              400, "invalid_input")
        assert field in fields_of(error), (command, change, error)


async def test_a_credit_is_hidden_from_who_may_not_see_the_original(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    author, stitcher, watcher = [await signup(client) for _ in range(3)]
    source = await original_slide(client, author, tmp_path)
    media_id = await video_media(client, stitcher, tmp_path, size="120x90", seconds=1)
    done = await made(client, stitcher, "slide.stitch", {"source_slide_id": source,
                                                         "media_id": media_id, "length_ms": 500})
    await block(client, author, watcher)
    seen = await ok(await get(client, watcher, done["id"]))
    assert seen["slide"]["stitch_of"]["available"] is False
    assert seen["slide"]["stitch_of"]["item_id"] is None
    assert seen["slide"]["stitch_of"]["author_id"] is None
    # The original's deletion leaves the stitch (a copy) playable, its credit unavailable.
    await ok(await rest(client, author, "slide.delete", {"slide_id": source}), 204)
    mine = await ok(await get(client, stitcher, done["id"]))
    assert mine["slide"]["stitch_of"]["available"] is False
    assert (await client.get(mine["slide"]["video"]["url"], headers=stitcher.headers)).status == 200


async def test_a_render_refuses_an_original_deleted_or_hidden_since_the_request(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    # The original plays its upload (no effects): deleting it leaves that media in place,
    # so only a check at render time stops the worker copying a slide that is gone.
    author, stitcher, dancer = [await signup(client) for _ in range(3)]
    source = await original_slide(client, author, tmp_path)
    stitch_media = await video_media(client, stitcher, tmp_path, size="120x90", seconds=1)
    stitch = await made(client, stitcher, "slide.stitch", {
        "source_slide_id": source, "media_id": stitch_media, "length_ms": 500})
    dance_media = await video_media(client, dancer, tmp_path, size="120x90", seconds=1)
    duet = await made(client, dancer, "slide.duet", {"source_slide_id": source,
                                                     "media_id": dance_media})
    services = client.app[SERVICES]
    worker = SlideWorker(settings, services.db, services.blobs, services.realtime, services.queue)

    async def rerender(slide_id: str) -> dict[str, Any]:
        # As if the job were only now taken from the queue.
        await db_execute(settings, """UPDATE items SET data = data || '{"status": "processing"}'
                                      WHERE id = $1""", uuid.UUID(slide_id))
        await worker.handle(render_job(uuid.UUID(slide_id)))
        owner = stitcher if slide_id == stitch["id"] else dancer
        return dict((await ok(await get(client, owner, slide_id)))["slide"])

    # The original's author blocks the dancer before the duet renders.
    await block(client, author, dancer)
    hidden = await rerender(duet["id"])
    assert (hidden["status"], hidden["failure_reason"]) == ("failed", "original_missing")
    # The original is deleted before the stitch renders.
    await ok(await rest(client, author, "slide.delete", {"slide_id": source}), 204)
    gone = await rerender(stitch["id"])
    assert (gone["status"], gone["failure_reason"]) == ("failed", "original_missing")
