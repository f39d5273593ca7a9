"""Media: uploads typed by their content, metadata and access checks, attachments for messages.

An upload is stored, then queued for the media worker (workers/media.py) and answered
202 "processing"; the worker makes the variants and moves it to ready or failed.

What /v1/media/{id}/content serves (originals may carry GPS and camera details):
- variant=original: the bytes as uploaded, to the uploader only, at any status.
- no variant: once ready, the processed form (images: `full`, re-encoded without
  metadata; videos: the `mp4` rendition), to everyone who may see the media; before
  that, the original to the uploader and 409 media_not_ready to anyone else.
- any other variant: once ready, to everyone who may see the media.
"""

from __future__ import annotations

import logging
import struct
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from handlers.commands import command
from handlers.context import Context
from handlers.errors import CommandError, invalid
from handlers.media_schemas import (
    MediaIdInput,
)
from handlers.rates import Rate, charge
from handlers.scopes import Scope
from jobs.media import QUEUE as MEDIA_QUEUE
from jobs.media import process_job
from jobs.queue import QueueUnavailable
from storage import media as media_store
from storage.blobs import BlobTooLarge
from storage.media import Media
from storage.views.media import MediaOut, content_url

log = logging.getLogger(__name__)

# Enough for every signature below, including an ftyp box with a long brand list.
SNIFF_BYTES = 512
ALLOWED_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif",
                 "video/mp4", "video/quicktime", "video/webm")
# ISO BMFF brands of MP4 video; AVIF/HEIC images and M4A audio share the container, not the type.
MP4_BRANDS = frozenset({b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42",
                        b"mp71", b"avc1", b"dash", b"M4V ", b"M4VH", b"M4VP", b"mmp4", b"MSNV",
                        b"f4v "})
QUICKTIME_BRANDS = frozenset({b"qt  "})
ISO_IMAGE_BRANDS = frozenset({b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"hevc",
                              b"hevx", b"mif1", b"msf1", b"M4A ", b"M4B ", b"M4P "})
VARIANTS = ("original", "full", "thumb_1280", "thumb_320", "poster", "mp4")


# Uploads per user (docs/limits.md); charged by upload(), which is not a command.
MEDIA_UPLOAD = Rate("media_upload")


@dataclass(frozen=True)
class Sniffed:
    kind: str
    content_type: str


def _iso_bmff(head: bytes) -> Sniffed | None:
    if len(head) < 12 or head[4:8] != b"ftyp":
        return None
    box_size = struct.unpack(">I", head[:4])[0]
    if box_size < 16 and box_size != 0:
        return None
    major = head[8:12]
    # Compatible brands follow the 4-byte minor version, up to the end of the box.
    end = len(head) if box_size == 0 else min(box_size, len(head))
    compatible = {head[i:i + 4] for i in range(16, end - 3, 4)}
    if major in QUICKTIME_BRANDS:
        return Sniffed("video", "video/quicktime")
    if major in ISO_IMAGE_BRANDS:
        return None
    if major in MP4_BRANDS or compatible & MP4_BRANDS:
        return Sniffed("video", "video/mp4")
    return None


def _vint(data: bytes, at: int, keep_marker: bool) -> tuple[int, int] | None:
    """An EBML variable-length integer at `at`: (value, bytes used), or None if cut short."""
    if at >= len(data) or data[at] == 0:
        return None
    length = 8 - data[at].bit_length() + 1
    if at + length > len(data):
        return None
    value = data[at] if keep_marker else data[at] & (0xFF >> length)
    for byte in data[at + 1:at + length]:
        value = (value << 8) | byte
    return value, length


def _webm(head: bytes) -> Sniffed | None:
    if not head.startswith(b"\x1a\x45\xdf\xa3"):
        return None
    size = _vint(head, 4, keep_marker=False)
    if size is None:
        return None
    at = 4 + size[1]
    end = min(len(head), at + size[0])
    while at < end:
        element = _vint(head, at, keep_marker=True)
        if element is None:
            return None
        length = _vint(head, at + element[1], keep_marker=False)
        if length is None:
            return None
        start = at + element[1] + length[1]
        if element[0] == 0x4282:  # DocType
            # Plain Matroska is not WebM: browsers will not play it.
            doc_type = head[start:start + length[0]].rstrip(b"\x00")
            return Sniffed("video", "video/webm") if doc_type == b"webm" else None
        at = start + length[0]
    return None


def sniff(head: bytes) -> Sniffed | None:
    """The media type of a file from its first bytes; None for anything not allowed."""
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("image", "image/jpeg")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image", "image/png")
    if head.startswith((b"GIF87a", b"GIF89a")):
        return Sniffed("image", "image/gif")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and head[12:16] in (b"VP8 ", b"VP8L", b"VP8X"):
        return Sniffed("image", "image/webp")
    return _iso_bmff(head) or _webm(head)


def attachment(media: Media) -> dict[str, Any]:
    """The entry a message carries for one media."""
    return {"id": str(media.id), "kind": media.kind, "content_type": media.content_type,
            "url": content_url(media.id)}


def _unsupported() -> CommandError:
    message = "the file is not a supported image or video"
    return CommandError("invalid_input", message, {
        "fields": [{"field": "file", "message": message, "type": "unsupported_media_type"}],
        "reason": "unsupported_media_type", "allowed": list(ALLOWED_TYPES)})


async def upload(ctx: Context, stream: AsyncIterator[bytes]) -> MediaOut:
    """Keep an uploaded file whose type is sniffed from its first bytes; answers its metadata."""
    services, limits = ctx.services, ctx.services.settings.limits
    owner_id = ctx.user.user_id
    # The upload route is not a command (it streams a multipart body), so it charges the
    # declared rate itself.
    await charge(ctx, MEDIA_UPLOAD)
    head = b""
    async for chunk in stream:
        head += chunk
        if len(head) >= SNIFF_BYTES:
            break
    if not head:
        raise invalid("file", "the file is empty", "empty_file")
    sniffed = sniff(head)
    if sniffed is None:
        raise _unsupported()
    limit = limits.image_upload_bytes if sniffed.kind == "image" else limits.video_upload_bytes

    async def content() -> AsyncIterator[bytes]:
        yield head
        async for rest in stream:
            yield rest

    media_id = uuid.uuid4()
    # Two hex digits of fan-out keep any one folder to a manageable size.
    key = f"originals/{media_id.hex[:2]}/{media_id}"
    try:
        info = await services.blobs.put(key, content(), limit)
    except BlobTooLarge:
        raise CommandError("payload_too_large", f"the {sniffed.kind} is larger than {limit} bytes",
                           {"limit": limit, "kind": sniffed.kind}) from None
    try:
        # Stored as "uploaded": only once the queue confirmed the job does it claim processing.
        await media_store.insert_media(
            services.db, media_id=media_id, owner_id=owner_id, kind=sniffed.kind,
            content_type=sniffed.content_type, size_bytes=info.size, sha256=info.sha256,
            storage_key=key)
    except BaseException:
        await services.blobs.delete(key)  # no row points at it: it would never be served
        raise
    try:
        await services.queue.publish(MEDIA_QUEUE, process_job(media_id))
    except QueueUnavailable as exc:
        await _discard(ctx, media_id, key)
        raise CommandError("unavailable", "uploads cannot be processed right now; retry",
                           {"accepted": False}) from exc
    # A cancel before this point leaves it "uploaded"; the worker's sweep queues it then.
    media = await media_store.mark_processing(services.db, media_id)
    if media is None:
        raise CommandError("not_found", "the upload was removed while it was stored")
    return MediaOut.of(media, await media_store.renditions(services.db, media_id))


async def _discard(ctx: Context, media_id: uuid.UUID, key: str) -> None:
    """Forget an upload whose job could not be queued: the client is told to upload again."""
    try:
        await media_store.delete_media(ctx.services.db, media_id)
        await ctx.services.blobs.delete(key)
    except Exception:
        # Left "uploaded", it is picked up by the worker's sweep: still never a false claim.
        log.exception("could not discard an unqueued upload", extra={"media_id": str(media_id)})


async def visible(ctx: Context, media_id: uuid.UUID) -> Media:
    """The media if the caller may see it: the owner, or a member where a message carries it."""
    media = await media_store.get_visible(ctx.services.db, media_id, ctx.user.user_id,
                                          ctx.services.clock())
    if media is None:
        # Same answer for missing and forbidden: a media id's existence is not revealed.
        raise CommandError("not_found", "no such media")
    return media


@command("media.get", input=MediaIdInput, rest=("GET", "/media/{media_id}"), scope=Scope.READ_MEDIA,
         output=MediaOut,
         rate=Rate("reads"))
async def get(ctx: Context, data: MediaIdInput) -> MediaOut:
    """A media's status, metadata and variant URLs, for its owner and members where a message
    carries it."""
    media = await visible(ctx, data.media_id)
    return MediaOut.of(media, await media_store.renditions(ctx.services.db, media.id))


@dataclass(frozen=True)
class Content:
    """The blob to serve for a content request."""

    storage_key: str
    content_type: str


def _not_ready(media: Media) -> CommandError:
    if media.status == "failed":
        return CommandError("conflict", "this upload could not be processed",
                            {"reason": "media_failed", "status": media.status})
    return CommandError("conflict", "this upload is still being processed; retry shortly",
                        {"reason": "media_not_ready", "status": media.status})


async def content(ctx: Context, media_id: uuid.UUID, variant: str | None) -> Content:
    """Which bytes of a media this caller gets (see the module docstring for the rules)."""
    if variant is not None and variant not in VARIANTS:
        raise invalid("variant", f"one of {', '.join(VARIANTS)}", "unknown_variant")
    media = await visible(ctx, media_id)
    owner = media.owner_id == ctx.user.user_id
    if variant == "original" or (variant is None and media.status != "ready" and owner):
        if not owner:
            # The original may carry the uploader's location; the others get the re-encode.
            raise CommandError("forbidden", "only the uploader may fetch the original",
                               {"reason": "original_owner_only"})
        return Content(media.storage_key, media.content_type)
    if media.status != "ready":
        raise _not_ready(media)
    wanted = variant or ("full" if media.kind == "image" else "mp4")
    made = await media_store.renditions(ctx.services.db, media.id)
    for rendition in made:
        if rendition.variant == wanted:
            return Content(rendition.storage_key, rendition.content_type)
    raise CommandError("not_found", f"this media has no {wanted} variant",
                       {"variant": wanted, "available": [r.variant for r in made]})


async def attachments(ctx: Context, media_ids: list[uuid.UUID]) -> list[dict[str, Any]]:
    """The media entries a message will carry; each id must be one of the sender's uploads.

    An upload may go on several messages of its owner (forwarding needs no new upload);
    each message then lets its conversation's members fetch it.
    """
    limit = ctx.services.settings.limits.message_media_max
    if len(media_ids) > limit:
        raise invalid("media_ids", f"at most {limit} media per message", "too_long")
    if len(set(media_ids)) != len(media_ids):
        raise invalid("media_ids", "the same media is listed twice", "duplicate_media")
    found = {m.id: m for m in await media_store.owned_by(ctx.services.db, media_ids,
                                                         ctx.user.user_id)}
    for index, media_id in enumerate(media_ids):
        media = found.get(media_id)
        if media is None:
            # Someone else's upload looks exactly like a missing one.
            raise invalid(f"media_ids.{index}", "no such media among your uploads",
                          "media_not_found")
        if media.status == "failed":
            raise invalid(f"media_ids.{index}", "this upload could not be processed",
                          "media_failed")
    return [attachment(found[media_id]) for media_id in media_ids]
