"""Input and output schemas of the slide commands (SlideOut itself is storage.views.slides)."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, Field

from handlers.commands import Input
from handlers.pagination import PageInput
from jobs.slides import STITCH_MAX_MS
from storage.views.slides import SlideOut

SlideVisibility = Literal["public", "followers", "friends", "private"]
CAPTION_MAX = 2200


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


class SlidePage(BaseModel):
    slides: list[SlideOut]
    next_cursor: str | None


class SlideViewOut(BaseModel):
    slide_id: uuid.UUID
    counted: bool = Field(description="false for the author's own views and repeats within 24 h")
    view_count: int

