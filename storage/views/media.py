"""Uploads as clients see them: where their bytes are served and what processing made."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, Field

from storage.media import Media, Rendition

# Why processing failed, in words, by media.failure_reason.
FAILURE_MESSAGES = {
    "corrupt": "the file is damaged or is not the image or video it claims to be",
    "type_mismatch": "the file's content does not match its type",
    "decompression_bomb": "the image is too large to process",
    "too_long": "the video is longer than allowed",
    "no_video": "the file has no video stream",
    "ffmpeg_failed": "the video could not be converted",
    "timeout": "processing took too long",
    "original_missing": "the uploaded file is missing",
}


def content_url(media_id: uuid.UUID) -> str:
    """Where the bytes are served, relative to the API host, so stored messages never go stale."""
    return f"/v1/media/{media_id}/content"


def failure_message(reason: str | None) -> str | None:
    if reason is None:
        return None
    return FAILURE_MESSAGES.get(reason, "the file could not be processed")


class MediaVariant(BaseModel):
    """One rendition of an upload: where to fetch it and its pixel size."""

    url: str
    content_type: str
    width: int
    height: int
    size_bytes: int


class MediaInfo(BaseModel):
    """An upload's metadata, processing status and renditions, as GET /v1/media/{id} answers.

    variants holds what processing made: full (the image re-encoded without metadata),
    thumb_1280 and thumb_320 (only those smaller than the image), poster and mp4 (videos).
    """

    id: uuid.UUID
    owner_id: uuid.UUID
    kind: Literal["image", "video"]
    content_type: str
    size_bytes: int
    sha256: str
    status: Literal["uploaded", "processing", "ready", "failed"]
    width: int | None
    height: int | None
    duration_ms: int | None
    blurhash: str | None
    failure_reason: str | None = Field(
        description="why processing failed: corrupt, type_mismatch, decompression_bomb, "
                    "too_long, no_video, ffmpeg_failed, timeout, original_missing")
    failure_message: str | None
    variants: dict[str, MediaVariant]
    url: str
    created_at: str


class MediaOut(MediaInfo):
    @classmethod
    def of(cls, media: Media, renditions: Iterable[Rendition] = ()) -> MediaOut:
        url = content_url(media.id)
        variants = {r.variant: MediaVariant(url=f"{url}?variant={r.variant}",
                                            content_type=r.content_type, width=r.width,
                                            height=r.height, size_bytes=r.size_bytes)
                    for r in renditions}
        return cls(id=media.id, owner_id=media.owner_id, kind=media.kind,
                   content_type=media.content_type, size_bytes=media.size_bytes,
                   sha256=media.sha256, status=media.status,
                   width=media.width, height=media.height, duration_ms=media.duration_ms,
                   blurhash=media.blurhash, failure_reason=media.failure_reason,
                   failure_message=failure_message(media.failure_reason), variants=variants,
                   url=url, created_at=media.created_at.isoformat())
