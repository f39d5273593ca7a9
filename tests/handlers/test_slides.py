"""Slides over the real server: uploads made with ffmpeg testsrc, the slides worker on RabbitMQ,
live progress on the author's socket, views, feeds, video replies and the content engine."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import socketio

from config import Settings
from handlers.slides import render_job
from server.resources import SERVICES
from storage import slides as slide_store
from tests.conftest import Account, AppFactory, SocketFactory, signup
from tests.handlers.conversation_helpers import Inbox, fields_of, is_event, ok, refused, rest
from tests.handlers.media_helpers import png, upload
from tests.handlers.slide_helpers import (
    Client,
    befriend,
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
from workers.slides import SlideWorker

# -- create, effects, progress --------------------------------------------------------------


async def test_a_slide_without_effects_is_ready_at_once_and_plays_the_upload(
    client: Client, account: Account, tmp_path: Path
) -> None:
    media_id = await video_media(client, account, tmp_path)
    slide = await create(client, account, media_id, caption="first #slide", allow_duet=False)
    info = slide["slide"]
    assert slide["kind"] == "slide" and slide["body"] == "first #slide"
    assert info["status"] == "ready" and info["progress"] == 100
    assert info["video"]["media_id"] == media_id
    assert (info["video"]["width"], info["video"]["height"]) == (160, 120)
    assert near(info["video"]["duration_ms"], 2000)
    assert (info["allow_duet"], info["allow_stitch"], info["source_media_id"]) == (False, True, media_id)
    assert slide["data"] == {}
    # Anyone may watch a public slide: the item carries the video.
    other = await signup(client)
    seen = await ok(await get(client, other, slide["id"]))
    assert seen["slide"]["source_media_id"] is None
    probe = await probe_url(client, other, seen["slide"]["video"]["url"], tmp_path)
    assert (probe.width, probe.height) == (160, 120)
    poster = await client.get(seen["slide"]["video"]["poster_url"], headers=other.headers)
    assert poster.status == 200 and poster.content_type == "image/jpeg"


async def test_effects_render_a_new_video_with_live_progress(
    client: Client, account: Account, tmp_path: Path, connect_socket: SocketFactory
) -> None:
    sio = await connect_socket(account.access_token)
    inbox = Inbox(sio, "slide.processing", "slide.ready", "slide.failed")
    media_id = await video_media(client, account, tmp_path, seconds=4)
    slide = await create(client, account, media_id, effects=[
        {"name": "grayscale"}, {"name": "speed_2x"},
        {"name": "text", "text": "Hello slides", "position": "top"}])
    assert slide["slide"]["status"] == "processing" and slide["slide"]["video"] is None
    assert slide["visibility"] == "public"
    assert slide["slide"]["effects"][2] == {"name": "text", "text": "Hello slides", "position": "top"}
    ready_at = await inbox.wait_for(is_event("slide.ready"), timeout=60)
    first = await inbox.wait_for(lambda n, d: n == "slide.processing" and d["slide_id"] == slide["id"])
    assert first < ready_at
    percents = [d["percent"] for n, d in inbox.events if n == "slide.processing"]
    assert percents[0] == 0 and percents == sorted(percents) and percents[-1] <= 99
    ready = inbox.events[ready_at][1]["slide"]
    assert ready["id"] == slide["id"] and ready["slide"]["status"] == "ready"
    video = ready["slide"]["video"]
    assert video["media_id"] != media_id
    probe = await probe_url(client, account, video["url"], tmp_path)
    # speed_2x halves the length; the frame keeps its size.
    assert near(probe.duration_ms, 2000) and near(video["duration_ms"], 2000)
    assert (probe.width, probe.height, probe.has_audio) == (160, 120, True)
    assert "slide.failed" not in inbox.names()
    # Once ready, its audience sees it, in feeds too.
    fan = await signup(client)
    await follow(client, fan, account)
    feed = await ok(await rest(client, fan, "feed.list_home", {}))
    assert slide["id"] in [i["id"] for i in feed["items"]]
    assert (await ok(await get(client, fan, slide["id"])))["visibility"] == "public"
    # As an item, a slide shows its public fields only, not the render's bookkeeping.
    as_item = next(i for i in feed["items"] if i["id"] == slide["id"])
    assert as_item["data"]["status"] == "ready" and as_item["data"]["duration_ms"]
    assert not {"source_media_id", "video_media_id", "queued", "visibility"} & set(as_item["data"])


async def test_a_render_that_fails_is_announced_and_stays_the_authors(
    make_client: AppFactory, tmp_path: Path
) -> None:
    # One ffmpeg run may take at most a millisecond: every render overruns. (The only app
    # of this test: the connect_socket fixture would start a second one, whose worker on
    # the same queue could take the job.)
    client = await make_client(slide_ffmpeg_timeout_s=0.001)
    author, other = await signup(client), await signup(client)
    await follow(client, other, author)
    sio = socketio.AsyncClient(reconnection=False)
    inbox = Inbox(sio, "slide.processing", "slide.ready", "slide.failed")
    await sio.connect(str(client.make_url("/")), auth={"token": author.access_token},
                      transports=["websocket"], wait_timeout=5)
    media_id = await video_media(client, author, tmp_path)
    slide = await create(client, author, media_id, effects=[{"name": "mirror"}])
    at = await inbox.wait_for(is_event("slide.failed", slide_id=slide["id"]), timeout=60)
    assert inbox.events[at][1]["reason"] == "timeout" and inbox.events[at][1]["message"]
    body = await finished(client, author, slide["id"])
    assert body["slide"]["status"] == "failed" and body["slide"]["failure_reason"] == "timeout"
    assert body["slide"]["video"] is None
    assert "slide.ready" not in inbox.names()
    await sio.disconnect()
    # Only ready slides reach anyone else: not by id, not as an item, not in a feed.
    await refused(await get(client, other, slide["id"]), 404, "not_found")
    await refused(await rest(client, other, "item.get", {"item_id": slide["id"]}), 404, "not_found")
    feed = await ok(await rest(client, other, "feed.list_home", {}))
    assert slide["id"] not in [i["id"] for i in feed["items"]]
    assert body["visibility"] == "public"


async def test_slide_create_refuses_bad_input(
    client: Client, account: Account, tmp_path: Path
) -> None:
    media_id = await video_media(client, account, tmp_path, seconds=1)

    async def bad(field: str, **payload: Any) -> dict[str, Any]:
        error = await refused(await rest(client, account, "slide.create",
                                         {"media_id": media_id, **payload}), 400, "invalid_input")
        assert field in fields_of(error), error
        return error

    error = await bad("effects.0.name", effects=[{"name": "sparkles"}])
    assert error["details"]["fields"][0]["type"] == "unknown_effect"
    await bad("effects.1.text", effects=[{"name": "blur"}, {"name": "text"}])
    await bad("effects.0.text", effects=[{"name": "text", "text": "   "}])
    await bad("effects.0.text", effects=[{"name": "text", "text": "two\nlines"}])
    await bad("effects.0.text", effects=[{"name": "text", "text": "x" * 81}])
    await bad("effects.0.position", effects=[{"name": "text", "text": "hi", "position": "left"}])
    await bad("effects.0.text", effects=[{"name": "sepia", "text": "hi"}])
    await bad("effects.1.name", effects=[{"name": "speed_2x"}, {"name": "speed_0_5x"}])
    await bad("effects.1.name", effects=[{"name": "blur"}, {"name": "blur"}])
    await bad("effects.0.strength", effects=[{"name": "blur", "strength": 3}])
    await bad("effects", effects=[{"name": n} for n in
                                  ("grayscale", "sepia", "vignette", "mirror", "blur", "speed_2x")])
    await bad("caption", caption="c" * 2201)
    await bad("visibility", visibility="close_friends")
    await bad("idempotency_key", idempotency_key="k" * 65)
    await bad("colour", colour="red")
    await bad("media_id", media_id="not-a-uuid")
    # Someone else's upload, a missing one and a picture are all refused on media_id.
    stranger = await signup(client)
    for other in (await video_media(client, stranger, tmp_path, seconds=1), str(uuid.uuid4())):
        error = await bad("media_id", media_id=other)
        assert error["details"]["fields"][0]["type"] == "media_not_found"
    picture = await ok(await upload(client, account, png()), 202)
    error = await bad("media_id", media_id=picture["id"])
    assert error["details"]["fields"][0]["type"] == "not_a_video"
    # The longest caption is fine.
    assert (await create(client, account, media_id, caption="c" * 2200))["body"] == "c" * 2200


async def test_a_video_over_three_minutes_is_refused(
    client: Client, account: Account, tmp_path: Path
) -> None:
    # 181 s at 1 frame a second and 32x32 pixels: cheap to make and to process.
    long_id = await video_media(client, account, tmp_path, size="32x32", seconds=181, fps=1,
                                audio=None)
    error = await refused(await rest(client, account, "slide.create", {"media_id": long_id}),
                          400, "invalid_input")
    assert error["details"]["fields"] == [
        {"field": "media_id", "message": "a slide's video is at most 180 s long", "type": "too_long"}]


async def test_an_unfinished_or_failed_upload_is_refused(
    client: Client, account: Account, settings: Settings, tmp_path: Path
) -> None:
    media_id = await video_media(client, account, tmp_path, seconds=1)
    await db_execute(settings, "UPDATE media SET status = 'processing' WHERE id = $1",
                     uuid.UUID(media_id))
    error = await refused(await rest(client, account, "slide.create", {"media_id": media_id}),
                          409, "conflict")
    assert error["details"]["reason"] == "media_not_ready"
    await db_execute(settings, """UPDATE media SET status = 'failed', failure_reason = 'corrupt'
                                  WHERE id = $1""", uuid.UUID(media_id))
    error = await refused(await rest(client, account, "slide.create", {"media_id": media_id}),
                          400, "invalid_input")
    assert error["details"]["fields"][0]["type"] == "media_failed"


async def test_a_retried_create_with_the_same_key_makes_one_slide(
    client: Client, account: Account, settings: Settings, tmp_path: Path
) -> None:
    media_id = await video_media(client, account, tmp_path, seconds=1)
    payload = {"media_id": media_id, "effects": [{"name": "sepia"}], "idempotency_key": "k-1"}
    answers = await asyncio.gather(*(rest(client, account, "slide.create", payload)
                                     for _ in range(3)))
    ids = {(await ok(resp, 201))["id"] for resp in answers}
    assert len(ids) == 1
    conn = await asyncpg.connect(settings.database_url)
    try:
        count = await conn.fetchval("SELECT count(*) FROM items WHERE author_id = $1 AND kind = 'slide'",
                                    uuid.UUID(account.id))
    finally:
        await conn.close()
    assert count == 1
    slide_id = ids.pop()
    assert (await finished(client, account, slide_id))["slide"]["status"] == "ready"
    # The same key for another video, or already taken by a post, is a conflict.
    other_media = await video_media(client, account, tmp_path, seconds=1)
    for key, media in (("k-1", other_media), ("k-2", media_id)):
        if key == "k-2":
            await ok(await rest(client, account, "item.create", {
                "kind": "post", "body": "hi", "idempotency_key": "k-2"}), 201)
        error = await refused(await rest(client, account, "slide.create", {
            "media_id": media, "idempotency_key": key}), 409, "conflict")
        assert error["details"]["reason"] == "idempotency_key_reused"
    await ok(await rest(client, account, "slide.delete", {"slide_id": slide_id}), 204)
    error = await refused(await rest(client, account, "slide.create", payload), 409, "conflict")
    assert error["details"]["reason"] == "deleted"


async def test_slide_creates_are_rate_limited(
    make_client: AppFactory, tmp_path: Path
) -> None:
    from config import Rates

    client = await make_client(rates=Rates(slide_create=(2, 3600)))
    account = await signup(client)
    media_id = await video_media(client, account, tmp_path, seconds=1)
    first = await create(client, account, media_id, idempotency_key="once")
    await create(client, account, media_id)
    await refused(await rest(client, account, "slide.create", {"media_id": media_id}),
                  429, "rate_limited")
    # A retry of a stored create is answered, not counted.
    again = await create(client, account, media_id, idempotency_key="once")
    assert again["id"] == first["id"]


# -- who sees what ---------------------------------------------------------------------------


async def test_visibility_and_blocks_decide_who_sees_a_slide(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    author, fan, friend, stranger = [await signup(client) for _ in range(4)]
    await follow(client, fan, author)
    await befriend(client, friend, author)
    media_id = await video_media(client, author, tmp_path, seconds=1)
    slides = {v: (await create(client, author, media_id, visibility=v))["id"]
              for v in ("public", "followers", "friends", "private")}
    expected = [
        (fan, {"public", "followers"}), (friend, {"public", "followers", "friends"}),
        (stranger, {"public"}), (author, {"public", "followers", "friends", "private"})]
    for viewer, visible in expected:
        for visibility, slide_id in slides.items():
            resp = await get(client, viewer, slide_id)
            assert resp.status == (200 if visibility in visible else 404), (visibility, resp.status)
    await block(client, author, stranger)
    await refused(await get(client, stranger, slides["public"]), 404, "not_found")
    await refused(await rest(client, stranger, "slide.view", {"slide_id": slides["public"]}),
                  404, "not_found")


async def test_comments_and_reactions_on_a_slide_come_from_the_content_engine(
    client: Client, account: Account, tmp_path: Path
) -> None:
    fan = await signup(client)
    media_id = await video_media(client, account, tmp_path, seconds=1)
    slide = await create(client, account, media_id)
    comment = await ok(await rest(client, fan, "item.create", {
        "kind": "comment", "parent_id": slide["id"], "body": "love it"}), 201)
    assert comment["root_id"] == slide["id"]
    await ok(await rest(client, fan, "item.react", {"item_id": slide["id"], "kind": "love"}))
    seen = await ok(await get(client, fan, slide["id"]))
    assert seen["counts"]["replies"] == 1 and seen["reactions"] == {"love": 1}
    assert seen["my_reaction"] == "love"
    closed = await create(client, account, media_id, allow_comments=False)
    await refused(await rest(client, fan, "item.create", {
        "kind": "comment", "parent_id": closed["id"], "body": "hey"}), 403, "forbidden")


# -- views ------------------------------------------------------------------------------------


async def test_views_count_once_per_viewer_per_day_even_when_concurrent(
    client: Client, account: Account, tmp_path: Path
) -> None:
    media_id = await video_media(client, account, tmp_path, seconds=1)
    slide_id = (await create(client, account, media_id))["id"]
    viewers = [await signup(client) for _ in range(3)]

    async def view(viewer: Account) -> dict[str, Any]:
        return dict(await ok(await rest(client, viewer, "slide.view", {"slide_id": slide_id})))

    answers = await asyncio.gather(*(view(v) for v in viewers for _ in range(5)))
    assert sum(a["counted"] for a in answers) == 3
    assert (await view(viewers[0]))["view_count"] == 3
    # The author's own views never count.
    own = await view(account)
    assert (own["counted"], own["view_count"]) == (False, 3)
    services = client.app[SERVICES]
    now = services.clock()
    services.clock = lambda: now + timedelta(hours=23)
    assert (await view(viewers[0]))["counted"] is False
    services.clock = lambda: now + timedelta(hours=24, seconds=1)
    again = await view(viewers[0])
    assert (again["counted"], again["view_count"]) == (True, 4)
    assert (await ok(await get(client, viewers[1], slide_id)))["counts"]["views"] == 4
    await refused(await rest(client, viewers[0], "slide.view", {"slide_id": str(uuid.uuid4())}),
                  404, "not_found")
    await refused(await rest(client, viewers[0], "slide.view", {"slide_id": "x"}),
                  400, "invalid_input")


# -- delete -----------------------------------------------------------------------------------


async def test_only_the_author_deletes_a_slide_and_its_render_goes(
    client: Client, account: Account, tmp_path: Path
) -> None:
    media_id = await video_media(client, account, tmp_path, seconds=1)
    slide = await create(client, account, media_id, effects=[{"name": "vignette"}])
    rendered = (await finished(client, account, slide["id"]))["slide"]["video"]
    other = await signup(client)
    error = await refused(await rest(client, other, "slide.delete", {"slide_id": slide["id"]}),
                          403, "forbidden")
    assert error["details"]["reason"] == "not_author"
    await ok(await rest(client, account, "slide.delete", {"slide_id": slide["id"]}), 204)
    await refused(await get(client, account, slide["id"]), 404, "not_found")
    await refused(await rest(client, account, "slide.delete", {"slide_id": slide["id"]}),
                  404, "not_found")
    gone = await client.get(f"/v1/media/{rendered['media_id']}", headers=account.headers)
    assert gone.status == 404
    # The upload it was made from is still the author's.
    assert (await client.get(f"/v1/media/{media_id}", headers=account.headers)).status == 200


# -- feeds and video replies ------------------------------------------------------------------


async def test_following_feed_pages_newest_first_through_visible_unmuted_ready_slides(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    me, followed, friend, stranger, muted = [await signup(client) for _ in range(5)]
    await follow(client, me, followed)
    await befriend(client, me, friend)
    await follow(client, me, muted)
    await ok(await rest(client, me, "user.mute", {"user_id": muted.id}))
    expected = []
    for author in (followed, friend, stranger, muted, followed):
        media_id = await video_media(client, author, tmp_path, seconds=1)
        slide = await create(client, author, media_id)
        if author in (followed, friend):
            expected.append(slide["id"])
    hidden = await create(client, followed, await video_media(client, followed, tmp_path, seconds=1),
                          visibility="private")
    seen: list[str] = []
    cursor = None
    while True:
        payload: dict[str, Any] = {"mode": "following", "limit": 2}
        if cursor:
            payload["cursor"] = cursor
        resp = await rest(client, me, "slide.list_feed", payload)
        page = await ok(resp)
        seen += [s["id"] for s in page["slides"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert 'rel="next"' in resp.headers["Link"]
    assert seen == expected[::-1]
    assert hidden["id"] not in seen
    await refused(await rest(client, me, "slide.list_feed", {"mode": "following", "cursor": "nope"}),
                  400, "invalid_input")
    await refused(await rest(client, me, "slide.list_feed", {"mode": "hot"}), 400, "invalid_input")
    await refused(await rest(client, me, "slide.list_feed", {"limit": 41}), 400, "invalid_input")


async def trending(client: Client, viewer: Account, after_first: Any = None) -> list[str]:
    """Every slide of one trending listing, page by page (other tests' slides included)."""
    ids: list[str] = []
    cursor = None
    while True:
        payload: dict[str, Any] = {"mode": "trending", "limit": 2}
        if cursor:
            payload["cursor"] = cursor
        page = await ok(await rest(client, viewer, "slide.list_feed", payload))
        ids += [s["id"] for s in page["slides"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        if after_first is not None:
            await after_first()
            after_first = None
    assert len(ids) == len(set(ids)), "a slide came twice"
    return ids


async def test_trending_ranks_by_recent_engagement_with_a_stable_cursor(
    client: Client, tmp_path: Path
) -> None:
    authors = [await signup(client) for _ in range(3)]
    fans = [await signup(client) for _ in range(4)]
    slides = []
    for author in authors:
        media_id = await video_media(client, author, tmp_path, seconds=1)
        slides.append((await create(client, author, media_id))["id"])
    # Slide 1 gets the most (reactions and a comment), slide 0 some views, slide 2 nothing.
    for fan in fans:
        await ok(await rest(client, fan, "item.react", {"item_id": slides[1], "kind": "like"}))
        await ok(await rest(client, fan, "slide.view", {"slide_id": slides[0]}))
    await ok(await rest(client, fans[0], "item.create", {
        "kind": "comment", "parent_id": slides[1], "body": "wow"}), 201)
    hidden = await create(client, fans[3], await video_media(client, fans[3], tmp_path, seconds=1))
    await block(client, fans[3], fans[0])
    viewer = fans[0]

    async def burst() -> None:
        for fan in fans:
            await ok(await rest(client, fan, "item.react", {"item_id": slides[2], "kind": "wow"}))

    # Engagement after the first page does not reshuffle the rest of that listing.
    listed = await trending(client, viewer, after_first=burst)
    assert [i for i in listed if i in slides] == [slides[1], slides[0], slides[2]]
    assert hidden["id"] not in listed
    # A new listing sees it: slide 2 (4 reactions) now passes slide 0 (4 views).
    fresh = await trending(client, viewer)
    assert [i for i in fresh if i in slides] == [slides[1], slides[2], slides[0]]
    await refused(await rest(client, viewer, "slide.list_feed", {
        "mode": "trending", "cursor": "bm90LWEtY3Vyc29y"}), 400, "invalid_input")


async def test_a_slide_can_answer_a_comment_with_a_video(
    client: Client, account: Account, settings: Settings, tmp_path: Path
) -> None:
    fan, outsider = await signup(client), await signup(client)
    media_id = await video_media(client, account, tmp_path, seconds=1)
    post = await ok(await rest(client, account, "item.create",
                               {"kind": "post", "body": "ask me", "visibility": "followers"}), 201)
    await follow(client, fan, account)
    comment = await ok(await rest(client, fan, "item.create", {
        "kind": "comment", "parent_id": post["id"], "body": "show us"}), 201)
    reply = await create(client, account, media_id, caption="here", reply_to_comment_id=comment["id"])
    assert reply["slide"]["reply_to_comment_id"] == comment["id"]
    page = await ok(await rest(client, fan, "slide.list_replies", {"comment_id": comment["id"]}))
    assert [s["id"] for s in page["slides"]] == [reply["id"]] and page["next_cursor"] is None
    # The comment lives under a followers-only post: an outsider sees neither.
    for command, payload in (("slide.list_replies", {"comment_id": comment["id"]}),
                             ("slide.create", {"media_id": await video_media(
                                 client, outsider, tmp_path, seconds=1),
                                 "reply_to_comment_id": comment["id"]})):
        await refused(await rest(client, outsider, command, payload), 404, "not_found")
    await refused(await rest(client, account, "slide.create", {
        "media_id": media_id, "reply_to_comment_id": post["id"]}), 404, "not_found")
    await refused(await rest(client, fan, "slide.list_replies", {"comment_id": "nope"}),
                  400, "invalid_input")


# -- the worker's redelivery and sweep --------------------------------------------------------


async def test_a_lost_job_is_queued_again_and_a_redelivery_renders_the_same_media(
    client: Client, account: Account, settings: Settings, tmp_path: Path,
    connect_socket: SocketFactory
) -> None:
    sio = await connect_socket(account.access_token)
    inbox = Inbox(sio, "slide.ready", "slide.failed")
    media_id = await video_media(client, account, tmp_path, seconds=1)
    slide = await create(client, account, media_id, effects=[{"name": "grayscale"}])
    first = (await finished(client, account, slide["id"]))["slide"]["video"]
    await inbox.wait_for(is_event("slide.ready"))
    services = client.app[SERVICES]
    worker = SlideWorker(settings, services.db, services.blobs, services.realtime, services.queue)
    # A redelivered job of a finished slide only announces it again.
    await worker.handle(render_job(uuid.UUID(slide["id"])))
    await inbox.wait_for(lambda name, _: inbox.names().count("slide.ready") >= 2)
    with pytest.raises(ValueError):
        await worker.handle({"type": "slide.sparkle", "slide_id": slide["id"]})
    await worker.handle(render_job(uuid.uuid4()))  # a slide that is gone: nothing to do
    # As if the server died between storing a slide and queueing its job.
    await db_execute(settings, """UPDATE items SET created_at = now() - interval '1 hour',
                                      data = data || '{"status": "processing", "queued": false}'
                                  WHERE id = $1""", uuid.UUID(slide["id"]))
    assert await worker.requeue_unqueued() == 1
    assert await worker.requeue_unqueued() == 0
    again = (await finished(client, account, slide["id"]))["slide"]
    assert again["status"] == "ready" and again["video"]["media_id"] == first["media_id"]
    assert (await probe_url(client, account, again["video"]["url"], tmp_path)).width == 160


async def test_a_duplicate_render_finishing_second_keeps_the_first_ones_video(
    client: Client, account: Account, settings: Settings, tmp_path: Path
) -> None:
    # Two deliveries of one job can render at once (the sweep queues a job again for a
    # slide still waiting in a long queue; a redelivery to another worker process). Both
    # write the same media and keys; the one that finds the slide ready already must not
    # take the winner's files with it.
    media_id = await video_media(client, account, tmp_path, seconds=1)
    slide = await create(client, account, media_id, effects=[{"name": "mirror"}])
    video = (await finished(client, account, slide["id"]))["slide"]["video"]
    services = client.app[SERVICES]
    worker = SlideWorker(settings, services.db, services.blobs, services.realtime, services.queue)
    as_taken = await slide_store.get_slide(services.db, uuid.UUID(slide["id"]))
    assert as_taken is not None
    await worker._render(as_taken)  # the late duplicate: the slide is ready meanwhile
    again = (await ok(await get(client, account, slide["id"])))["slide"]
    assert again["status"] == "ready" and again["video"] == video
    probe = await probe_url(client, account, video["url"], tmp_path)
    assert probe.width == 160

async def test_the_slide_commands_work_over_a_socket_too(
    client: Client, account: Account, tmp_path: Path, connect_socket: SocketFactory
) -> None:
    sio = await connect_socket(account.access_token)
    media_id = await video_media(client, account, tmp_path, seconds=1)
    made = await sio.call("slide.create", {"media_id": media_id, "caption": "socket"}, timeout=10)
    assert made["ok"] and made["data"]["slide"]["status"] == "ready", made
    slide_id = made["data"]["id"]
    got = await sio.call("slide.get", {"slide_id": slide_id}, timeout=10)
    assert got["ok"] and got["data"]["body"] == "socket"
    page = await sio.call("slide.list_feed", {"mode": "trending", "limit": 40}, timeout=10)
    assert page["ok"] and "slides" in page["data"]
    bad = await sio.call("slide.stitch", {"source_slide_id": slide_id, "media_id": media_id,
                                          "length_ms": 9000}, timeout=10)
    assert not bad["ok"] and bad["error"]["code"] == "invalid_input"
    gone = await sio.call("slide.delete", {"slide_id": slide_id}, timeout=10)
    assert gone["ok"], gone
