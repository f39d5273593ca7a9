"""Slides: short videos with effects, stitches, duets and video replies; views and feeds.

A slide is an item of kind 'slide' (docs/slides.md). Made from one of the caller's ready
video uploads: with no effects and no original to compose with, it is ready at once and
plays the upload's MP4; otherwise it is "processing" and a slide.render job goes through
the work queue to the slides worker (workers/slides.py), which renders a new video and
tells the author's devices (slide.processing, then slide.ready or slide.failed).

Others see a slide only once it is ready, and only where hs_can_see allows; an unseen,
unready, deleted or missing slide answers not_found alike.
"""

from __future__ import annotations

import base64
import binascii
import logging
import uuid
from datetime import datetime
from typing import Any

from handlers import activities
from handlers.commands import command
from handlers.context import Context
from handlers.errors import CommandError, invalid
from handlers.idempotency import item_retry
from handlers.pagination import Position, decode_cursor, page_of
from handlers.rates import Rate
from handlers.scopes import Scope
from handlers.slide_schemas import (
    CreateInput,
    DuetInput,
    FeedInput,
    RepliesToInput,
    SlideFields,
    SlideIdInput,
    SlidePage,
    SlideViewOut,
    StitchInput,
)
from jobs.queue import QueueUnavailable
from jobs.slide_effects import Effect, EffectError, parse_effects
from jobs.slides import QUEUE as SLIDES_QUEUE
from jobs.slides import render_job
from storage import items as item_store
from storage import media as media_store
from storage import slides as store
from storage.media import Media
from storage.slides import Credit, Slide
from storage.views.slides import SlideOut, slide_outs

log = logging.getLogger(__name__)

# A viewer's views of one slide count once per this window (docs/slides.md).
VIEW_WINDOW_S = 24 * 3600
# Trending: engagement within this window counts, among slides at most this old.
TRENDING_WINDOW_S = 48 * 3600
TRENDING_CANDIDATE_AGE_S = 7 * 24 * 3600


def _not_found() -> CommandError:
    return CommandError("not_found", "no such slide")


def _effects(data: SlideFields) -> list[Effect]:
    try:
        return parse_effects([e.model_dump(exclude_none=True) for e in data.effects])
    except EffectError as exc:
        raise invalid(f"effects.{exc.field}".rstrip("."), exc.message, exc.kind) from None


async def _video(ctx: Context, media_id: uuid.UUID) -> tuple[Media, int, int]:
    """The caller's ready video upload within the length limit, and its MP4's size."""
    db, limit = ctx.services.db, ctx.services.settings.limits.slide_video_max_s
    found = await media_store.owned_by(db, [media_id], ctx.user.user_id)
    if not found:
        # Someone else's upload looks exactly like a missing one.
        raise invalid("media_id", "no such video among your uploads", "media_not_found")
    media = found[0]
    if media.kind != "video":
        raise invalid("media_id", "a slide needs a video", "not_a_video")
    if media.status == "failed":
        raise invalid("media_id", "this upload could not be processed", "media_failed")
    if media.status != "ready":
        raise CommandError("conflict", "the video is still being processed; retry once "
                           "media.ready arrives", {"reason": "media_not_ready"})
    if media.duration_ms is None or media.duration_ms > limit * 1000:
        raise invalid("media_id", f"a slide's video is at most {limit} s long", "too_long")
    mp4 = next((r for r in await media_store.renditions(db, media.id) if r.variant == "mp4"), None)
    if mp4 is None:
        raise invalid("media_id", "this upload has no playable video", "media_failed")
    return media, mp4.width, mp4.height


async def _original(ctx: Context, slide_id: uuid.UUID, kind: str) -> Slide:
    """The slide to stitch or duet: visible, ready, and allowing it (unless it is the caller's)."""
    slide = await store.get_visible(ctx.services.db, slide_id, ctx.user.user_id)
    if slide is None:
        raise _not_found()
    if slide.status != "ready" or slide.video_media_id is None:
        raise CommandError("conflict", "that slide is not ready yet",
                           {"reason": "source_not_ready", "status": slide.status})
    allowed = slide.allow_stitch if kind == "stitch" else slide.allow_duet
    if slide.author_id != ctx.user.user_id and not allowed:
        raise CommandError("forbidden", f"the author does not allow a {kind} of this slide",
                           {"reason": f"{kind}_not_allowed"})
    return slide


async def _replay(ctx: Context, data: SlideFields, credit: Credit | None) -> SlideOut | None:
    """The slide an earlier create with this idempotency_key made, if there is one."""
    key, db, me = data.idempotency_key, ctx.services.db, ctx.user.user_id
    if key is None or await item_store.created_with_key(db, me, key) is None:
        return None
    earlier = await store.by_idempotency_key(db, me, key)
    if earlier is None or earlier.source_media_id != data.media_id or (
            None if earlier.credit is None else earlier.credit.item_id) != (
            None if credit is None else credit.item_id):
        raise CommandError("conflict", "this idempotency_key was used for a different item",
                           {"reason": "idempotency_key_reused"})
    if earlier.deleted_at is not None:
        raise CommandError("conflict", "the slide made with this idempotency_key was deleted",
                           {"reason": "deleted"})
    return await _out(ctx, earlier.id)


def _state(data: SlideFields, effects: list[Effect], media: Media, size: tuple[int, int],
           render: bool) -> dict[str, Any]:
    """A new slide's items.data; the video fields are filled now only when nothing renders."""
    return {
        "status": "processing" if render else "ready", "progress": 0 if render else 100,
        "queued": not render, "effects": [e.to_json() for e in effects],
        "allow_duet": data.allow_duet, "allow_stitch": data.allow_stitch,
        "visibility": data.visibility, "source_media_id": str(media.id),
        "video_media_id": None if render else str(media.id),
        "duration_ms": None if render else media.duration_ms,
        "width": None if render else size[0], "height": None if render else size[1],
    }


async def _make(ctx: Context, data: SlideFields, *, credit: Credit | None = None,
                reply_to: uuid.UUID | None = None) -> SlideOut:
    """Store a new slide (ready now, or processing with its render job queued)."""
    services, me = ctx.services, ctx.user.user_id
    effects = _effects(data)
    # A retry answers what the first call made.
    replayed = await _replay(ctx, data, credit)
    if replayed is not None:
        return replayed
    media, width, height = await _video(ctx, data.media_id)
    render = bool(effects) or credit is not None
    state = _state(data, effects, media, (width, height), render)
    if credit is not None:
        state[f"{credit.kind}_of"] = credit.to_json()
    if reply_to is not None:
        state["reply_to_comment_id"] = str(reply_to)
    async with services.db.transaction() as conn:
        slide = await store.insert_slide(
            # Private until rendered: no feed or read shows others an unfinished slide.
            conn, author_id=me, caption=data.caption,
            visibility="private" if render else data.visibility,
            allow_comments=data.allow_comments, data=state, idempotency_key=data.idempotency_key)
        if slide is not None and not render:
            await store.link_video(conn, slide.id, media.id)
    if slide is None:
        # A concurrent create with this key won; the insert waited for it to commit.
        replayed = await _replay(ctx, data, credit)
        if replayed is None:
            raise RuntimeError("the item created under this idempotency key is missing")
        return replayed
    if render:
        try:
            await services.queue.publish(SLIDES_QUEUE, render_job(slide.id))
        except QueueUnavailable as exc:
            await store.discard(services.db, slide.id)
            raise CommandError("unavailable", "slides cannot be rendered right now; retry",
                               {"accepted": False}) from exc
        # A crash before this leaves queued=false; the worker's sweep queues the job then.
        await store.mark_queued(services.db, slide.id)
    return await _out(ctx, slide.id)


async def _out(ctx: Context, slide_id: uuid.UUID) -> SlideOut:
    slide = await store.get_visible(ctx.services.db, slide_id, ctx.user.user_id)
    if slide is None:
        raise _not_found()
    [out] = await slide_outs(ctx.services.db, ctx.user.user_id, [slide])
    return out


@command("slide.create", input=CreateInput, rest=("POST", "/slides"), scope=Scope.WRITE_CONTENT,
         status=201, output=SlideOut,
         rate=Rate("slide_create"), is_retry=item_retry)
async def create(ctx: Context, data: CreateInput) -> SlideOut:
    """Post a slide from your video upload, with effects, optionally as a video reply to a comment."""
    if data.reply_to_comment_id is not None and not await store.visible_comment(
            ctx.services.db, data.reply_to_comment_id, ctx.user.user_id):
        raise CommandError("not_found", "no such comment")
    return await _make(ctx, data, reply_to=data.reply_to_comment_id)


@command("slide.stitch", input=StitchInput, rest=("POST", "/slides/{source_slide_id}/stitches"),
         scope=Scope.WRITE_CONTENT, status=201, output=SlideOut,
         rate=Rate("slide_create"), is_retry=item_retry)
async def stitch(ctx: Context, data: StitchInput) -> SlideOut:
    """A new slide: up to 5 s of another slide, then your video; credits the original."""
    original = await _original(ctx, data.source_slide_id, "stitch")
    if original.duration_ms is not None and data.start_ms >= original.duration_ms:
        raise invalid("start_ms", f"the original is {original.duration_ms} ms long", "out_of_range")
    assert original.video_media_id is not None
    return await _make(ctx, data, credit=Credit(
        kind="stitch", item_id=original.id, author_id=original.author_id,
        video_media_id=original.video_media_id, start_ms=data.start_ms, length_ms=data.length_ms))


@command("slide.duet", input=DuetInput, rest=("POST", "/slides/{source_slide_id}/duets"),
         scope=Scope.WRITE_CONTENT, status=201, output=SlideOut,
         rate=Rate("slide_create"), is_retry=item_retry)
async def duet(ctx: Context, data: DuetInput) -> SlideOut:
    """A new slide: another slide and your video side by side; credits the original."""
    original = await _original(ctx, data.source_slide_id, "duet")
    assert original.video_media_id is not None
    return await _make(ctx, data, credit=Credit(
        kind="duet", item_id=original.id, author_id=original.author_id,
        video_media_id=original.video_media_id, audio=data.audio))


@command("slide.get", input=SlideIdInput, rest=("GET", "/slides/{slide_id}"), scope=Scope.READ_CONTENT,
         output=SlideOut,
         rate=Rate("reads"))
async def get(ctx: Context, data: SlideIdInput) -> SlideOut:
    """A slide you may see (your own at any status, others' once ready)."""
    return await _out(ctx, data.slide_id)


@command("slide.view", input=SlideIdInput, rest=("POST", "/slides/{slide_id}/views"),
         scope=Scope.WRITE_CONTENT, output=SlideViewOut,
         rate=Rate("slide_view"), activity=activities.SLIDE_VIEWED)
async def view(ctx: Context, data: SlideIdInput) -> SlideViewOut:
    """Record that you watched a slide: counted once per viewer per 24 h, never for its author."""
    services, me = ctx.services, ctx.user.user_id
    slide = await store.get_visible(services.db, data.slide_id, me)
    if slide is None or slide.status != "ready":
        raise _not_found()
    if slide.author_id == me:
        return SlideViewOut(slide_id=slide.id, counted=False, view_count=slide.view_count)
    counted, count = await store.record_view(services.db, slide.id, me, services.clock(),
                                             VIEW_WINDOW_S)
    return SlideViewOut(slide_id=slide.id, counted=counted, view_count=count)


@command("slide.delete", input=SlideIdInput, rest=("DELETE", "/slides/{slide_id}"),
         scope=Scope.WRITE_CONTENT, status=204,
         rate=Rate("item_delete"))
async def delete(ctx: Context, data: SlideIdInput) -> None:
    """Delete your slide: a tombstone stays for its comments; its rendered video is removed."""
    services, me = ctx.services, ctx.user.user_id
    slide = await store.get_visible(services.db, data.slide_id, me)
    if slide is None:
        raise _not_found()
    if slide.author_id != me:
        raise CommandError("forbidden", "only the author may delete a slide", {"reason": "not_author"})
    keys: list[str] = []
    async with services.db.transaction() as conn:
        await store.delete_slide(conn, slide.id, services.clock())
        if slide.video_media_id is not None and slide.video_media_id != slide.source_media_id:
            keys = await store.delete_rendition_media(conn, slide.video_media_id)
    for key in dict.fromkeys(keys):
        try:
            await services.blobs.delete(key)
        except OSError:
            # The rows are gone, so nothing serves it; a stray file is only disk space.
            log.warning("could not delete a rendered slide file", extra={"key": key})


def _trending_cursor(as_of: datetime, score: float, slide_id: uuid.UUID) -> str:
    raw = f"t|{as_of.isoformat()}|{score!r}|{slide_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_trending(cursor: str) -> tuple[datetime, float, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, when, score, slide_id = raw.split("|")
        at = datetime.fromisoformat(when)
        if tag != "t" or at.tzinfo is None:
            raise ValueError("not a trending cursor")
        return at, float(score), uuid.UUID(slide_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid("cursor", "not a cursor from slide.list_feed trending", "cursor_invalid") from None


def _position(slide: Slide) -> Position:
    return Position(slide.created_at, slide.id)


@command("slide.list_feed", input=FeedInput, rest=("GET", "/slides"), scope=Scope.READ_CONTENT,
         output=SlidePage,
         rate=Rate("reads"))
async def feed(ctx: Context, data: FeedInput) -> SlidePage:
    """Slides from people you follow (newest first), or trending ones (by recent engagement)."""
    services, me = ctx.services, ctx.user.user_id
    if data.mode == "following":
        after = decode_cursor(data.cursor, "slide.list_feed following")
        rows = await store.following(services.db, me, services.clock(),
                                     (after.at, after.id) if after else None, data.limit + 1)
        page, cursor = page_of(rows, data.limit, _position)
        return SlidePage(slides=await slide_outs(services.db, me, page), next_cursor=cursor)
    as_of, score_after = services.clock(), None
    if data.cursor is not None:
        as_of, score, slide_id = _decode_trending(data.cursor)
        score_after = (score, slide_id)
    found = await store.trending(services.db, me, as_of, score_after, data.limit + 1,
                                 window_s=TRENDING_WINDOW_S,
                                 candidate_age_s=TRENDING_CANDIDATE_AGE_S)
    slides = found.slides[:data.limit]
    next_cursor = None
    if len(found.slides) > data.limit:
        last = data.limit - 1
        next_cursor = _trending_cursor(as_of, found.scores[last], slides[last].id)
    return SlidePage(slides=await slide_outs(services.db, me, slides), next_cursor=next_cursor)


@command("slide.list_replies", input=RepliesToInput, rest=("GET", "/slides/replies/{comment_id}"),
         scope=Scope.READ_CONTENT, output=SlidePage,
         rate=Rate("reads"))
async def replies_to(ctx: Context, data: RepliesToInput) -> SlidePage:
    """The video replies to a comment you may see, newest first."""
    services, me = ctx.services, ctx.user.user_id
    after = decode_cursor(data.cursor, "slide.list_replies")
    if not await store.visible_comment(services.db, data.comment_id, me):
        raise CommandError("not_found", "no such comment")
    rows = await store.replies_to(services.db, data.comment_id, me,
                                  (after.at, after.id) if after else None, data.limit + 1)
    page, cursor = page_of(rows, data.limit, _position)
    return SlidePage(slides=await slide_outs(services.db, me, page), next_cursor=cursor)

