"""Media: uploads typed by content, size and rate limits, access-checked serving, messages with media."""

from __future__ import annotations

import asyncio
import hashlib
import struct
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from config import Limits, Rates, Settings
from handlers.media import sniff
from storage.blobs import BlobTooLarge, LocalBlobStore, check_key
from tests import media_files
from tests.conftest import Account, AppFactory, SocketFactory, signup
from tests.handlers.conversation_helpers import make_group
from tests.handlers.media_helpers import (
    AVIF,
    GIF,
    JPEG,
    MOV,
    MP4,
    WEBM,
    WEBP,
    blob_files,
    ebml,
    error,
    iso_bmff,
    original,
    png,
    send,
    settled,
    sql,
    upload,
    uploaded,
)

# -- sniffing -------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "expected"), [
    (png(), ("image", "image/png")),
    (JPEG, ("image", "image/jpeg")),
    (GIF, ("image", "image/gif")),
    (b"GIF87a" + GIF[6:], ("image", "image/gif")),
    (WEBP, ("image", "image/webp")),
    (MP4, ("video", "video/mp4")),
    (iso_bmff(b"XAVC", b"XAVC", b"mp42"), ("video", "video/mp4")),
    (MOV, ("video", "video/quicktime")),
    (WEBM, ("video", "video/webm")),
], ids=["png", "jpeg", "gif", "gif87", "webp", "mp4", "mp4-compatible", "mov", "webm"])
def test_sniff_recognises_allowed_types(data: bytes, expected: tuple[str, str]) -> None:
    sniffed = sniff(data)
    assert sniffed is not None
    assert (sniffed.kind, sniffed.content_type) == expected


@pytest.mark.parametrize("data", [
    b"hello, this is plain text\n", b"<svg xmlns='http://www.w3.org/2000/svg'/>",
    b"<html><script>alert(1)</script></html>", b"%PDF-1.7\n", b"PK\x03\x04zip",
    AVIF, iso_bmff(b"M4A ", b"M4A ", b"isom"), ebml(b"matroska"),
    b"RIFF\x1a\x00\x00\x00WAVEfmt ", b"\x89PNG", b"\xff\xd8", b"\x1a\x45\xdf\xa3", b"",
    struct.pack(">I", 8) + b"ftypisom",
], ids=["text", "svg", "html", "pdf", "zip", "avif", "m4a", "matroska", "wav", "png-cut",
        "jpeg-cut", "ebml-cut", "empty", "ftyp-too-short"])
def test_sniff_refuses_everything_else(data: bytes) -> None:
    assert sniff(data) is None


# -- the blob store -------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["../x", "a/../../x", "/etc/passwd", ".tmp/x", "a//b", "a/./b",
                                 "a\\b", "", "a/", "x\x00y", "a/.."])
def test_blob_keys_cannot_leave_the_folder(key: str) -> None:
    with pytest.raises(ValueError):
        check_key(key)


async def _stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def test_local_store_puts_atomically_and_keeps_nothing_too_large(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "media")
    await store.open_store()
    info = await store.put("a/b", _stream(b"hello ", b"world"), max_bytes=11)
    assert (info.size, info.sha256) == (11, hashlib.sha256(b"hello world").hexdigest())
    assert await store.exists("a/b")
    reader = await store.open("a/b")
    assert reader.size == 11
    assert b"".join([c async for c in reader.chunks()]) == b"hello world"
    await reader.close()
    with pytest.raises(BlobTooLarge):
        await store.put("a/c", _stream(b"x" * 8, b"y" * 8), max_bytes=10)
    assert not await store.exists("a/c")
    assert list((tmp_path / "media" / ".tmp").iterdir()) == []
    assert await store.delete("a/b") is True
    assert await store.delete("a/b") is False
    with pytest.raises(ValueError):
        await store.put("../escape", _stream(b"x"), max_bytes=10)
    assert not (tmp_path / "escape").exists()


# -- upload ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "filename", "declared", "kind", "content_type"), [
    (png(), "clip.mp4", "video/mp4", "image", "image/png"),
    (JPEG, "photo.png", "image/png", "image", "image/jpeg"),
    (GIF, "a.txt", "text/plain", "image", "image/gif"),
    (WEBP, "noext", "application/octet-stream", "image", "image/webp"),
    (MP4, "movie.gif", "image/gif", "video", "video/mp4"),
    (MOV, "movie.mp4", "video/mp4", "video", "video/quicktime"),
    (WEBM, "clip.webm.jpg", "image/jpeg", "video", "video/webm"),
], ids=["png-as-mp4", "jpeg-as-png", "gif-as-txt", "webp", "mp4-as-gif", "mov-as-mp4", "webm"])
async def test_upload_is_typed_by_content_not_name_or_header(
    client: Any, account: Account, settings: Settings, data: bytes, filename: str,
    declared: str, kind: str, content_type: str,
) -> None:
    resp = await upload(client, account, data, filename, declared)
    assert resp.status == 202, await resp.text()
    body = await resp.json()
    assert body["kind"] == kind and body["content_type"] == content_type
    assert body["size_bytes"] == len(data)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    # Queued, so never "uploaded"; the fakes of videos here fail once the worker gets them.
    assert body["status"] in ("processing", "ready", "failed")
    assert body["owner_id"] == account.id
    assert body["url"] == f"/v1/media/{body['id']}/content"
    assert resp.headers["Location"] == f"/v1/media/{body['id']}"
    content = await client.get(original(body), headers=account.headers)
    assert content.status == 200
    assert await content.read() == data
    assert content.headers["Content-Type"] == content_type


@pytest.mark.parametrize(("data", "filename", "declared"), [
    (b"just some text, honestly\n", "cat.jpg", "image/jpeg"),
    (b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>", "icon.png", "image/png"),
    (b"<!doctype html><script>alert(1)</script>", "clip.mp4", "video/mp4"),
    (AVIF, "photo.avif", "image/avif"),
], ids=["text-as-jpg", "svg-as-png", "html-as-mp4", "avif"])
async def test_unsupported_content_is_refused_and_not_kept(
    client: Any, account: Account, settings: Settings, data: bytes, filename: str, declared: str,
) -> None:
    resp = await upload(client, account, data, filename, declared)
    assert resp.status == 400
    body = await resp.json()
    assert error(body) == ("invalid_input", ["unsupported_media_type"])
    assert body["error"]["details"]["reason"] == "unsupported_media_type"
    assert "image/png" in body["error"]["details"]["allowed"]
    assert blob_files(settings) == []


async def test_empty_file_is_invalid_input(client: Any, account: Account) -> None:
    resp = await upload(client, account, b"", "empty.png", "image/png")
    assert resp.status == 400
    assert error(await resp.json()) == ("invalid_input", ["empty_file"])


async def test_oversize_uploads_are_refused_per_kind_and_leave_no_blob(
    make_client: AppFactory, settings: Settings
) -> None:
    client = await make_client(limits=Limits(image_upload_bytes=4096, video_upload_bytes=8192))
    alice = await signup(client)
    big_png = png(padding=5000)
    resp = await upload(client, alice, big_png, "a.png", "image/png")
    assert resp.status == 413
    body = await resp.json()
    assert body["error"]["code"] == "payload_too_large"
    assert body["error"]["details"] == {"limit": 4096, "kind": "image"}
    assert blob_files(settings) == []
    # The same size is fine for a video, whose limit is larger.
    video = iso_bmff(b"isom", b"isom", body=len(big_png))
    assert 4096 < len(video) <= 8192
    assert (await upload(client, alice, video, "v.mp4", "video/mp4")).status == 202
    exact = png(padding=4096 - len(png(padding=1)) + 1)
    assert len(exact) == 4096
    assert (await upload(client, alice, exact)).status == 202


async def test_oversize_upload_is_refused_before_the_body_ends(
    make_client: AppFactory, settings: Settings
) -> None:
    """The server answers 413 once the limit is passed, while the client is still sending."""
    client = await make_client(limits=Limits(image_upload_bytes=4096))
    alice = await signup(client)
    boundary = "b0undary"
    never = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
               f"filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n").encode()
        # More than the limit plus the one chunk the multipart parser reads ahead.
        yield png(padding=300_000)
        await never.wait()  # the rest of the body never comes
        yield f"\r\n--{boundary}--\r\n".encode()

    resp = await asyncio.wait_for(client.post(
        "/v1/media", data=body(),
        headers={**alice.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"}), 10)
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "payload_too_large"
    await asyncio.sleep(0.1)
    assert blob_files(settings) == []


async def test_declared_body_larger_than_any_limit_is_refused_unread(
    make_client: AppFactory,
) -> None:
    client = await make_client(limits=Limits(image_upload_bytes=2048, video_upload_bytes=2048))
    alice = await signup(client)
    resp = await upload(client, alice, b"\x00" * (1024 * 1024 + 4096))
    assert resp.status == 413


async def test_form_without_a_file_part_is_invalid_input(client: Any, account: Account) -> None:
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("caption", "no file here")
    form.add_field("other", "still none")
    resp = await client.post("/v1/media", data=form, headers=account.headers)
    assert resp.status == 400
    assert error(await resp.json()) == ("invalid_input", ["file_missing"])


async def test_other_form_fields_before_the_file_are_skipped(client: Any, account: Account) -> None:
    form = aiohttp.FormData()
    form.add_field("caption", "hello")
    form.add_field("upload", GIF, filename="x.gif", content_type="image/gif")
    resp = await client.post("/v1/media", data=form, headers=account.headers)
    assert resp.status == 202
    assert (await resp.json())["content_type"] == "image/gif"


@pytest.mark.parametrize(("data", "content_type"), [
    (png(), "image/png"),
    (b'{"file": "x"}', "application/json"),
    (b"--x\r\nbroken", "multipart/form-data"),
], ids=["raw-bytes", "json", "no-boundary"])
async def test_non_multipart_bodies_are_invalid_input(
    client: Any, account: Account, data: bytes, content_type: str,
) -> None:
    resp = await client.post("/v1/media", data=data,
                             headers={**account.headers, "Content-Type": content_type})
    assert resp.status == 400
    code, types = error(await resp.json())
    assert code == "invalid_input"
    assert types[0] in {"multipart_expected", "multipart_invalid"}


FILE_HEAD = (b'--bnd\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
             b"Content-Type: image/png\r\n\r\n")


@pytest.mark.parametrize("body", [
    FILE_HEAD + png(padding=200_000),
    b'--bnd\r\nContent-Disposition: form-data; name="file"\r\n',
    b"--bnd\r\n" + b"X" * 70_000,
    b"no boundary anywhere",
], ids=["no-closing-boundary", "headers-cut", "header-line-too-long", "no-boundary"])
async def test_truncated_or_broken_forms_are_refused_and_not_kept(
    client: Any, account: Account, settings: Settings, body: bytes
) -> None:
    resp = await client.post("/v1/media", data=body, headers={
        **account.headers, "Content-Type": "multipart/form-data; boundary=bnd"})
    assert resp.status == 400
    assert error(await resp.json()) == ("invalid_input", ["multipart_invalid"])
    assert blob_files(settings) == []
    # The closing delimiter without its final "--" still ends the part: that file is whole.
    resp = await client.post("/v1/media", data=FILE_HEAD + GIF + b"\r\n--bnd", headers={
        **account.headers, "Content-Type": "multipart/form-data; boundary=bnd"})
    assert resp.status == 202
    assert (await resp.json())["size_bytes"] == len(GIF)


async def test_upload_needs_a_valid_token(client: Any) -> None:
    resp = await upload(client, None, png())
    assert resp.status == 401
    assert (await resp.json())["error"]["details"]["reason"] == "token_missing"
    assert "Bearer" in resp.headers["WWW-Authenticate"]
    form = aiohttp.FormData()
    form.add_field("file", png(), filename="a.png")
    resp = await client.post("/v1/media", data=form, headers={"Authorization": "Bearer nope"})
    assert resp.status == 401


async def test_uploads_are_rate_limited_per_user(make_client: AppFactory) -> None:
    client = await make_client(rates=Rates(media_upload=(2, 60)))
    alice, bob = await signup(client), await signup(client)
    for _ in range(2):
        assert (await upload(client, alice, GIF)).status == 202
    resp = await upload(client, alice, GIF)
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) >= 1
    assert (await upload(client, bob, GIF)).status == 202


# -- reading --------------------------------------------------------------------------------


async def test_owner_reads_metadata_and_content_with_safe_headers(
    client: Any, account: Account
) -> None:
    data = png()
    media = await uploaded(client, account, data)
    ready = await settled(client, account, media["id"])
    assert ready == {**media, **{k: ready[k] for k in ("status", "width", "height", "blurhash",
                                                         "variants")}}
    assert set(ready["variants"]) == {"full"}  # 2x2: no thumbnail is smaller
    assert (ready["status"], ready["width"], ready["height"]) == ("ready", 2, 2)
    meta = await client.get(f"/v1/media/{media['id']}", headers=account.headers)
    assert meta.status == 200
    assert await meta.json() == ready
    for url, expected in ((original(media), data), (media["url"], None)):
        resp = await client.get(url, headers=account.headers)
        assert resp.status == 200
        body = await resp.read()
        # Once ready, the plain URL serves the re-encode without metadata.
        assert body == expected if expected is not None else body.startswith(b"\x89PNG")
        assert resp.headers["Content-Type"] == "image/png"
        assert resp.headers["Content-Disposition"] == "inline"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Cache-Control"].startswith("private")
        assert "sandbox" in resp.headers["Content-Security-Policy"]


async def test_video_content_supports_range_requests(client: Any, account: Account) -> None:
    media = await uploaded(client, account, MP4)
    resp = await client.get(media["url"], headers={**account.headers, "Range": "bytes=4-11"})
    assert resp.status == 206
    assert await resp.read() == MP4[4:12]
    assert resp.headers["Content-Type"] == "video/mp4"


async def test_stores_without_local_files_stream_the_content(
    client: Any, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = png(padding=300_000)
    media = await uploaded(client, account, data)
    monkeypatch.setattr(LocalBlobStore, "local_path", lambda self, key: None)
    resp = await client.get(original(media), headers=account.headers)
    assert resp.status == 200
    assert resp.headers["Content-Length"] == str(len(data))
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert await resp.read() == data
    # The worker copies the original out of such a store to process it.
    assert (await settled(client, account, media["id"]))["status"] == "ready"
    resp = await client.get(media["url"], headers=account.headers)
    assert resp.status == 200
    assert (await resp.read()).startswith(b"\x89PNG")


async def test_strangers_get_not_found_for_existing_and_missing_media(
    client: Any, account: Account
) -> None:
    media = await uploaded(client, account)
    stranger = await signup(client)
    for media_id in (media["id"], str(uuid.uuid4())):
        for path in (f"/v1/media/{media_id}", f"/v1/media/{media_id}/content"):
            resp = await client.get(path, headers=stranger.headers)
            assert resp.status == 404, path
            assert (await resp.json())["error"]["code"] == "not_found"
    resp = await client.get(media["url"])
    assert resp.status == 401
    resp = await client.get("/v1/media/not-a-uuid/content", headers=account.headers)
    assert resp.status == 400


async def test_media_get_over_a_socket(
    client: Any, account: Account, connect_socket: SocketFactory
) -> None:
    media = await uploaded(client, account, WEBM)
    sio = await connect_socket(account.access_token)
    reply = await sio.call("media.get", {"media_id": media["id"]}, timeout=5)
    assert reply["ok"] is True, reply
    assert reply["data"]["content_type"] == "video/webm"
    reply = await sio.call("media.get", {"media_id": str(uuid.uuid4())}, timeout=5)
    assert reply["error"]["code"] == "not_found"


# -- messages with media --------------------------------------------------------------------


async def test_members_see_media_a_message_carries_until_they_leave(
    client: Any, settings: Settings, tmp_path: Path
) -> None:
    alice, bob, carol = await signup(client), await signup(client), await signup(client)
    conversation_id = await make_group(settings, alice, bob)
    image = await uploaded(client, alice, media_files.jpeg(orientation=1))
    video = await uploaded(client, alice, media_files.video(tmp_path, seconds=1))
    assert (await client.get(image["url"], headers=bob.headers)).status == 404

    resp = await send(client, alice, conversation_id, [image["id"], video["id"]], "look")
    assert resp.status == 201, await resp.text()
    message = await resp.json()
    assert message["media"] == [
        {"id": image["id"], "kind": "image", "content_type": "image/jpeg", "url": image["url"]},
        {"id": video["id"], "kind": "video", "content_type": "video/mp4", "url": video["url"]},
    ]
    history = await client.get(f"/v1/conversations/{conversation_id}/messages",
                               headers=bob.headers)
    assert (await history.json())["messages"][-1]["media"] == message["media"]
    for media in (image, video):
        assert (await settled(client, alice, media["id"]))["status"] == "ready"
        resp = await client.get(media["url"], headers=bob.headers)
        assert resp.status == 200
        assert (await client.get(f"/v1/media/{media['id']}", headers=bob.headers)).status == 200
        # The original (camera details, location) stays with its uploader.
        resp = await client.get(original(media), headers=bob.headers)
        assert resp.status == 403
        assert (await resp.json())["error"]["details"]["reason"] == "original_owner_only"
    stripped = await (await client.get(image["url"], headers=bob.headers)).read()
    assert stripped.startswith(b"\xff\xd8") and b"PhoneMaker" not in stripped
    assert (await client.get(image["url"], headers=carol.headers)).status == 404

    await sql(settings, """UPDATE conversation_members SET active = false
                           WHERE conversation_id = $1 AND user_id = $2""",
              uuid.UUID(conversation_id), uuid.UUID(bob.id))
    assert (await client.get(image["url"], headers=bob.headers)).status == 404
    assert (await client.get(f"{image['url']}?variant=thumb_320",
                             headers=bob.headers)).status == 404
    assert (await client.get(f"/v1/media/{video['id']}", headers=bob.headers)).status == 404
    assert (await client.get(image["url"], headers=alice.headers)).status == 200


async def test_members_wait_for_processing_and_never_get_the_original(
    client: Any, settings: Settings
) -> None:
    alice, bob = await signup(client), await signup(client)
    conversation_id = await make_group(settings, alice, bob)
    media = await uploaded(client, alice, media_files.jpeg(orientation=6))
    assert (await send(client, alice, conversation_id, [media["id"]])).status == 201
    # Held back as if the worker had not got to it yet.
    await sql(settings, "UPDATE media SET status = 'processing' WHERE id = $1",
              uuid.UUID((await settled(client, alice, media["id"]))["id"]))
    resp = await client.get(media["url"], headers=bob.headers)
    assert resp.status == 409
    assert (await resp.json())["error"]["details"] == {"reason": "media_not_ready",
                                                       "status": "processing"}
    assert int(resp.headers["Retry-After"]) >= 1
    assert (await client.get(original(media), headers=bob.headers)).status == 403
    # The uploader sees the original meanwhile.
    resp = await client.get(media["url"], headers=alice.headers)
    assert resp.status == 200 and b"PhoneMaker" in await resp.read()
    await sql(settings, "UPDATE media SET status = 'ready' WHERE id = $1", uuid.UUID(media["id"]))
    for variant in ("", "?variant=full", "?variant=thumb_320"):
        resp = await client.get(media["url"] + variant, headers=bob.headers)
        assert resp.status == 200, variant
        assert resp.headers["Content-Type"] == "image/jpeg"
        assert b"PhoneMaker" not in await resp.read()
    resp = await client.get(media["url"] + "?variant=poster", headers=bob.headers)
    assert resp.status == 404
    assert (await resp.json())["error"]["details"]["available"] == ["full", "thumb_320"]
    resp = await client.get(media["url"] + "?variant=huge", headers=bob.headers)
    assert resp.status == 400
    assert error(await resp.json()) == ("invalid_input", ["unknown_variant"])


async def test_deleting_the_message_withdraws_the_media_from_members(
    client: Any, settings: Settings
) -> None:
    alice, bob = await signup(client), await signup(client)
    conversation_id = await make_group(settings, alice, bob)
    media = await uploaded(client, alice, GIF)
    message = await (await send(client, alice, conversation_id, [media["id"]])).json()
    assert (await settled(client, alice, media["id"]))["status"] == "ready"
    assert (await client.get(media["url"], headers=bob.headers)).status == 200
    resp = await client.delete(f"/v1/messages/{message['id']}", headers=alice.headers)
    assert resp.status == 204
    assert (await client.get(media["url"], headers=bob.headers)).status == 404
    assert (await client.get(media["url"], headers=alice.headers)).status == 200


async def test_owner_may_forward_an_upload_to_another_conversation(
    client: Any, settings: Settings
) -> None:
    alice, bob, carol = await signup(client), await signup(client), await signup(client)
    first = await make_group(settings, alice, bob)
    second = await make_group(settings, alice, carol)
    media = await uploaded(client, alice, media_files.jpeg())
    assert (await settled(client, alice, media["id"]))["status"] == "ready"
    assert (await send(client, alice, first, [media["id"]])).status == 201
    assert (await client.get(media["url"], headers=carol.headers)).status == 404
    assert (await send(client, alice, second, [media["id"]])).status == 201
    assert (await client.get(media["url"], headers=carol.headers)).status == 200


async def test_send_refuses_media_that_is_not_the_senders(client: Any, settings: Settings) -> None:
    alice, bob = await signup(client), await signup(client)
    conversation_id = await make_group(settings, alice, bob)
    alices = await uploaded(client, alice)
    # Bob received Alice's upload in a message; he still cannot send it as his own.
    assert (await send(client, alice, conversation_id, [alices["id"]])).status == 201
    for media_ids in ([alices["id"]], [str(uuid.uuid4())]):
        resp = await send(client, bob, conversation_id, media_ids, "mine now")
        assert resp.status == 400
        body = await resp.json()
        assert error(body) == ("invalid_input", ["media_not_found"])
        assert body["error"]["details"]["fields"][0]["field"] == "media_ids.0"
    history = await (await client.get(f"/v1/conversations/{conversation_id}/messages",
                                      headers=bob.headers)).json()
    assert len(history["messages"]) == 1


async def test_send_refuses_too_many_and_duplicate_media(
    make_client: AppFactory, settings: Settings
) -> None:
    client = await make_client(limits=Limits(message_media_max=2))
    alice, bob = await signup(client), await signup(client)
    conversation_id = await make_group(settings, alice, bob)
    ids = [(await uploaded(client, alice, GIF))["id"] for _ in range(3)]
    resp = await send(client, alice, conversation_id, ids)
    assert resp.status == 400
    assert error(await resp.json()) == ("invalid_input", ["too_long"])
    resp = await send(client, alice, conversation_id, [ids[0], ids[0]])
    assert error(await resp.json()) == ("invalid_input", ["duplicate_media"])
    resp = await send(client, alice, conversation_id, [str(uuid.uuid4()) for _ in range(11)])
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid_input"
    assert (await send(client, alice, conversation_id, ids[:2])).status == 201


async def test_send_refuses_failed_media(client: Any, settings: Settings) -> None:
    alice, bob = await signup(client), await signup(client)
    conversation_id = await make_group(settings, alice, bob)
    media = await uploaded(client, alice)
    await settled(client, alice, media["id"])
    await sql(settings, "UPDATE media SET status = 'failed', failure_reason = 'corrupt' "
                        "WHERE id = $1", uuid.UUID(media["id"]))
    resp = await send(client, alice, conversation_id, [media["id"]])
    assert error(await resp.json()) == ("invalid_input", ["media_failed"])


async def test_a_retried_send_with_media_returns_the_same_message(
    client: Any, settings: Settings
) -> None:
    alice, bob = await signup(client), await signup(client)
    conversation_id = await make_group(settings, alice, bob)
    media = await uploaded(client, alice)
    payload = {"media_ids": [media["id"]], "client_id": "retry-1"}
    path = f"/v1/conversations/{conversation_id}/messages"
    first = await (await client.post(path, json=payload, headers=alice.headers)).json()
    again = await client.post(path, json=payload, headers=alice.headers)
    assert again.status == 201
    assert (await again.json())["id"] == first["id"]
    conn = await asyncpg.connect(settings.database_url)
    try:
        links = await conn.fetch("SELECT message_id, position FROM message_media WHERE media_id = $1",
                                 uuid.UUID(media["id"]))
    finally:
        await conn.close()
    assert [(str(r["message_id"]), r["position"]) for r in links] == [(first["id"], 0)]
