"""Slides as one viewer sees them (SlideOut): the item, its video, effects and credits."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field

from storage.db import Database
from storage.slides import Slide
from storage.views.items import ItemOut, hydrate
from storage.views.media import content_url

# Why rendering failed, in words, by the slide's failure_reason.
FAILURE_MESSAGES = {
    "timeout": "rendering took too long",
    "ffmpeg_failed": "the video could not be rendered",
    "original_missing": "a video this slide is made from is gone",
    "corrupt": "a video this slide is made from could not be read",
    "no_video": "a video this slide is made from has no picture",
}


def failure_message(reason: str | None) -> str | None:
    if reason is None:
        return None
    return FAILURE_MESSAGES.get(reason, "the slide could not be rendered")


class VideoOut(BaseModel):
    """The slide's playable video (an H.264/AAC MP4) and its poster frame."""

    media_id: uuid.UUID
    url: str
    poster_url: str
    width: int | None
    height: int | None
    duration_ms: int | None


class CreditOut(BaseModel):
    """The original a stitch or duet was made from; ids are null if you may not see it."""

    item_id: uuid.UUID | None
    author_id: uuid.UUID | None
    available: bool
    start_ms: int | None = None
    length_ms: int | None = None
    audio: Literal["original", "new"] | None = None


class SlideInfo(BaseModel):
    """What makes an item a slide: its processing state, video, effects and credits."""

    status: Literal["processing", "ready", "failed"]
    progress: int = Field(description="render progress in percent (100 once ready)")
    failure_reason: str | None = Field(
        description="timeout, ffmpeg_failed, original_missing, corrupt or no_video")
    failure_message: str | None
    effects: list[dict[str, Any]]
    allow_duet: bool
    allow_stitch: bool
    video: VideoOut | None = Field(description="null until ready")
    stitch_of: CreditOut | None
    duet_of: CreditOut | None
    reply_to_comment_id: uuid.UUID | None
    source_media_id: uuid.UUID | None = Field(description="the upload it was made from (author only)")


class SlideOut(ItemOut):
    """A slide: the item as item.get shows it (data left empty) plus its slide fields."""

    slide: SlideInfo


def _credit(slide: Slide, kind: str) -> CreditOut | None:
    credit = slide.credit
    if credit is None or credit.kind != kind:
        return None
    shown = bool(slide.credit_visible)
    return CreditOut(item_id=credit.item_id if shown else None,
                     author_id=credit.author_id if shown else None, available=shown,
                     start_ms=credit.start_ms, length_ms=credit.length_ms,
                     audio=credit.audio)


def slide_info(slide: Slide, viewer: uuid.UUID) -> SlideInfo:
    video = None
    if slide.status == "ready" and slide.video_media_id is not None:
        url = content_url(slide.video_media_id)
        video = VideoOut(media_id=slide.video_media_id, url=url, poster_url=f"{url}?variant=poster",
                         width=slide.width, height=slide.height, duration_ms=slide.duration_ms)
    reason = slide.failure_reason
    return SlideInfo(
        status=slide.status, progress=slide.progress,
        failure_reason=reason,
        failure_message=failure_message(reason),
        effects=slide.effects, allow_duet=slide.allow_duet, allow_stitch=slide.allow_stitch,
        video=video, stitch_of=_credit(slide, "stitch"), duet_of=_credit(slide, "duet"),
        reply_to_comment_id=slide.reply_to_comment_id,
        source_media_id=slide.source_media_id if viewer == slide.author_id else None)


async def slide_outs(db: Database, viewer: uuid.UUID, slides: list[Slide]) -> list[SlideOut]:
    """SlideOut of each slide for this viewer, in order (the caller checked visibility)."""
    items = await hydrate(db, viewer, [s.item for s in slides])
    # visibility: the audience chosen, also while the row stays private until ready.
    return [SlideOut(**{**dict(out), "data": {}, "visibility": s.visibility},
                     slide=slide_info(s, viewer))
            for out, s in zip(items, slides, strict=True)]
