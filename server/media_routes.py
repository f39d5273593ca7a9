"""Media over HTTP: the multipart upload and the access-checked content route.

The JSON command core cannot carry a file stream, so these two routes parse the
transport here and leave every decision to handlers.media (which bytes whom: see its
docstring). POST answers 202: the upload is stored and queued for processing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from handlers import media as media_handlers
from handlers.context import Context
from handlers.errors import CommandError, invalid
from handlers.scopes import Scope, covers
from server.dispatch import Dispatcher
from server.rest import (
    REQUEST_ID,
    Handler,
    bearer_token,
    client_ip,
    error_response,
    json_response,
)
from storage.blobs import BlobNotFound

UPLOAD_SCOPE = Scope.WRITE_MEDIA
READ_SCOPE = Scope.READ_MEDIA
CHUNK = 64 * 1024
# Form fields other than the file (a caption, a client id) are skipped, up to this much.
OTHER_FIELDS_BYTES = 64 * 1024
# Room for the multipart boundaries and part headers around the largest allowed file.
FORM_OVERHEAD_BYTES = 1024 * 1024
# What a member asking for media still being processed is told to wait before retrying.
NOT_READY_RETRY_S = 2
CONTENT_HEADERS = {
    "Content-Disposition": "inline",
    "X-Content-Type-Options": "nosniff",
    # Revalidated on every use, so an access that was taken away is not served from cache.
    "Cache-Control": "private, no-cache",
    # An uploaded file opened on its own never runs scripts or loads anything.
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


def _context(request: web.Request, dispatcher: Dispatcher, scope: Scope) -> Context:
    """Authenticate the Bearer token as the command routes do, and check its scope."""
    token = bearer_token(request)
    if token is None:
        raise CommandError("unauthorized", "authentication required", {"reason": "token_missing"})
    principal = dispatcher.authenticate(token)
    if not covers(principal.scopes, scope):
        raise CommandError("forbidden", f"the token lacks the scope {scope.value!r}",
                           {"required_scope": scope.value})
    return Context(services=dispatcher.services, principal=principal, transport="rest",
                   request_id=request.get(REQUEST_ID) or uuid.uuid4().hex, ip=client_ip(request),
                   user_agent=request.headers.get("User-Agent"))


async def _file_part(request: web.Request) -> tuple[MultipartReader, BodyPartReader]:
    """The form's file part: the first with a filename, or the one named "file"."""
    if request.content_type != "multipart/form-data":
        raise invalid("(body)", "send the file as multipart/form-data", "multipart_expected")
    skipped = 0
    try:
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                raise invalid("file", "the form has no file part", "file_missing")
            if not isinstance(part, BodyPartReader):
                raise invalid("file", "nested multipart forms are not supported", "nested_form")
            if part.filename is not None or part.name == "file":
                return reader, part
            while chunk := await part.read_chunk(CHUNK):
                skipped += len(chunk)
                if skipped > OTHER_FIELDS_BYTES:
                    raise invalid("(body)", "the form fields besides the file are too large",
                                  "fields_too_large")
    except (ValueError, HttpProcessingError):
        # aiohttp refuses a missing boundary or a broken part header this way.
        raise invalid("(body)", "malformed multipart body", "multipart_invalid") from None


async def _chunks(reader: MultipartReader, part: BodyPartReader) -> AsyncIterator[bytes]:
    try:
        while chunk := await part.read_chunk(CHUNK):
            yield chunk
        # The part also ends when the body does; only a boundary after it proves the file
        # arrived whole, so a truncated upload is refused rather than kept cut short.
        await reader.next()
    except (ValueError, HttpProcessingError):
        raise invalid("file", "the file part is cut short or malformed", "multipart_invalid") \
            from None
    except ConnectionError:
        # The client went away; nobody reads this answer, but it must not log as a crash.
        raise CommandError("invalid_input", "the upload was interrupted") from None


def make_upload_handler(dispatcher: Dispatcher) -> Handler:
    async def upload(request: web.Request) -> web.StreamResponse:
        try:
            ctx = _context(request, dispatcher, UPLOAD_SCOPE)
            limits = ctx.services.settings.limits
            largest = max(limits.image_upload_bytes, limits.video_upload_bytes)
            if request.content_length is not None and \
                    request.content_length > largest + FORM_OVERHEAD_BYTES:
                raise CommandError("payload_too_large", f"the body is larger than {largest} bytes",
                                   {"limit": largest})
            reader, part = await _file_part(request)
            media = await media_handlers.upload(ctx, _chunks(reader, part))
        except CommandError as exc:
            return error_response(exc)
        return json_response(media.model_dump(mode="json"), 202,
                             {"Location": f"/v1/media/{media.id}"})

    return upload


def make_content_handler(dispatcher: Dispatcher) -> Handler:
    async def content(request: web.Request) -> web.StreamResponse:
        try:
            ctx = _context(request, dispatcher, READ_SCOPE)
            try:
                media_id = uuid.UUID(request.match_info["media_id"])
            except ValueError:
                raise invalid("id", "not a valid UUID", "uuid_parsing") from None
            source = await media_handlers.content(ctx, media_id, request.query.get("variant"))
        except CommandError as exc:
            refused = error_response(exc)
            if isinstance(exc.details, dict) and exc.details.get("reason") == "media_not_ready":
                refused.headers["Retry-After"] = str(NOT_READY_RETRY_S)
            return refused
        headers = {**CONTENT_HEADERS, "Content-Type": source.content_type}
        blobs = ctx.services.blobs
        path = blobs.local_path(source.storage_key)
        if path is not None:
            if not await asyncio.to_thread(path.is_file):
                return error_response(CommandError("not_found", "no such media"))
            # FileResponse brings Range (video seeking), ETag revalidation and sendfile.
            return web.FileResponse(path, headers=headers)
        try:
            reader = await blobs.open(source.storage_key)
        except BlobNotFound:
            return error_response(CommandError("not_found", "no such media"))
        try:
            response = web.StreamResponse(headers=headers)
            response.content_length = reader.size
            await response.prepare(request)
            if request.method != "HEAD":
                async for chunk in reader.chunks():
                    await response.write(chunk)
            await response.write_eof()
        finally:
            await reader.close()
        return response

    return content


def add_media_routes(app: web.Application, dispatcher: Dispatcher) -> None:
    """POST /v1/media and GET /v1/media/{id}/content[?variant=...]; GET /v1/media/{id} is the
    media.get command."""
    app.router.add_post("/v1/media", make_upload_handler(dispatcher), name="media.upload")
    app.router.add_get("/v1/media/{media_id}/content", make_content_handler(dispatcher),
                       name="media.content")
