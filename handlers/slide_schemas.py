"""Input and output schemas of the slide commands, and slide_outs(), which builds SlideOut pages."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field

from handlers.commands import Input
from handlers.item_schemas import ItemOut, hydrate
from handlers.media import content_url
from handlers.pagination import PageInput
from storage.db import Database
from storage.slides import Slide

SlideVisibility = Literal["public", "followers", "friends", "private"]
CAPTION_MAX = 2200
# The most of the original a stitch takes (docs/slides.md).
STITCH_MAX_MS = 5000
FAILURE_MESSAGES = {
    "timeout": "rendering took too long",
    "ffmpeg_failed": "the video could not be rendered",
    "original_missing": "a video this slide is made from is gone",
    "corrupt": "a video this slide is made from could not be read",
    "no_video": "a video this slide is made from has no picture",
}


class EffectIn(Input):
    """One effect preset; text and position only for the "text" preset."""

    name: str = Field(min_length=1, max_length=32, description=(
        "grayscale, sepia, vignette, mirror, blur, speed_0_5x, speed_2x or text"))
    text: str | None = Field(default=None, max_length=200,
                             description='"text" only: one line of 1-80 characters')
    position: str | None = Field(default=None, max_length=16,
                                 description='"text" only: top, center or bottom (default)')


class SlideFields(Input):
    """What every new slide takes, whichever way it is made."""

    media_id: uuid.UUID = Field(description="your uploaded video (media.ready, at most 3 minutes)")
    caption: str | None = Field(default=None, max_length=CAPTION_MAX)
    effects: list[EffectIn] = Field(default_factory=list, max_length=5, description=(
        "presets applied in order to your video (speed and text at most once each)"))
    allow_comments: bool = True
    allow_duet: bool = True
    allow_stitch: bool = True
    visibility: SlideVisibility = "public"
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=64)


class CreateInput(SlideFields):
    reply_to_comment_id: uuid.UUID | None = Field(
        default=None, description="a comment you may see: the slide becomes its video reply")


class StitchInput(SlideFields):
    source_slide_id: uuid.UUID
    start_ms: int = Field(default=0, ge=0, description="where the original's part starts")
    length_ms: int = Field(default=STITCH_MAX_MS, ge=100, le=STITCH_MAX_MS,
                           description="how much of the original comes first (100-5,000 ms)")


class DuetInput(SlideFields):
    source_slide_id: uuid.UUID
    audio: Literal["original", "new"] = Field(default="original",
                                              description="whose sound the duet plays")


class SlideIdInput(Input):
    slide_id: uuid.UUID


class FeedInput(PageInput):
    mode: Literal["following", "trending"] = "following"


class RepliesToInput(PageInput):
    comment_id: uuid.UUID


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


class SlidePage(BaseModel):
    slides: list[SlideOut]
    next_cursor: str | None


class SlideViewOut(BaseModel):
    slide_id: uuid.UUID
    counted: bool = Field(description="false for the author's own views and repeats within 24 h")
    view_count: int


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
        failure_message=None if reason is None else FAILURE_MESSAGES.get(
            reason, "the slide could not be rendered"),
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
