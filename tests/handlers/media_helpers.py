"""Helpers for the media tests, and the item, slide and media-worker tests that upload too.

Files with real headers, uploads and waiting for the worker, peeks at the database and at
the media folder.
"""

from __future__ import annotations

import asyncio
import struct
import uuid
import zlib
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from config import Settings
from tests.conftest import Account

# -- files made here: real headers, real enough bodies -------------------------------------


def png(width: int = 2, height: int = 2, padding: int = 0) -> bytes:
    """A valid RGB PNG; padding adds an ancillary chunk to reach a size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + b"\x80\x40\x20" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    extra = chunk(b"tEXt", b"c\x00" + b"x" * padding) if padding else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


JPEG = (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
        + b"\xff\xdb\x00\x43\x00" + bytes(range(1, 65)) + b"\xff\xd9")

GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00"
       b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")

WEBP = (b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00\x2f\x00\x00\x00\x10\x07\x10\x11\x11"
        b"\x88\x88\xfe\x07\x00")


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def iso_bmff(major: bytes, *compatible: bytes, body: int = 64) -> bytes:
    return (box(b"ftyp", major + b"\x00\x00\x02\x00" + b"".join(compatible))
            + box(b"free", b"") + box(b"mdat", b"\x00" * body))


MP4 = iso_bmff(b"isom", b"isom", b"iso2", b"avc1", b"mp41")

MOV = iso_bmff(b"qt  ", b"qt  ")

AVIF = iso_bmff(b"avif", b"avif", b"mif1", b"miaf")


def ebml(doc_type: bytes, body: int = 64) -> bytes:
    def element(element_id: bytes, data: bytes) -> bytes:
        return element_id + bytes([0x80 | len(data)]) + data

    header = b"".join([element(b"\x42\x86", b"\x01"), element(b"\x42\xf7", b"\x01"),
                       element(b"\x42\xf2", b"\x04"), element(b"\x42\xf3", b"\x08"),
                       element(b"\x42\x82", doc_type), element(b"\x42\x87", b"\x04"),
                       element(b"\x42\x85", b"\x02")])
    return (b"\x1a\x45\xdf\xa3" + bytes([0x80 | len(header)]) + header
            + b"\x18\x53\x80\x67\x01\xff\xff\xff\xff\xff\xff\xff" + b"\x00" * body)


WEBM = ebml(b"webm")


# -- uploads ------------------------------------------------------------------------------


async def upload(client: Any, account: Account | None, data: bytes, filename: str = "upload.bin",
                 content_type: str = "application/octet-stream") -> Any:
    form = aiohttp.FormData()
    form.add_field("file", data, filename=filename, content_type=content_type)
    return await client.post("/v1/media", data=form,
                             headers=account.headers if account is not None else {})


async def uploaded(client: Any, account: Account, data: bytes = b"") -> dict[str, Any]:
    resp = await upload(client, account, data or png())
    assert resp.status == 202, await resp.text()
    body: dict[str, Any] = await resp.json()
    # Queued, so never "uploaded"; a tiny file may be done before the answer is written.
    assert body["status"] in ("processing", "ready", "failed"), body
    return body


async def settled(client: Any, account: Account, media_id: str,
                  timeout: float = 30.0) -> dict[str, Any]:
    """The media once the worker is done with it (ready or failed)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        resp = await client.get(f"/v1/media/{media_id}", headers=account.headers)
        body: dict[str, Any] = await resp.json()
        if body["status"] in ("ready", "failed"):
            return body
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"media still {body['status']} after {timeout} s")
        await asyncio.sleep(0.05)


def original(media: dict[str, Any]) -> str:
    return f"{media['url']}?variant=original"


async def send(client: Any, account: Account, conversation_id: str, media_ids: list[str],
               body: str | None = None) -> Any:
    payload: dict[str, Any] = {"media_ids": media_ids, "client_id": uuid.uuid4().hex}
    if body is not None:
        payload["body"] = body
    return await client.post(f"/v1/conversations/{conversation_id}/messages", json=payload,
                             headers=account.headers)


def error(body: dict[str, Any]) -> tuple[str, list[str]]:
    """The error code and the per-field types, if any."""
    fields = (body["error"].get("details") or {}).get("fields", [])
    return body["error"]["code"], [f["type"] for f in fields]


def blob_files(settings: Settings) -> list[Path]:
    """Every file in the media folder, temp files included."""
    root = settings.media_dir
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def sql(settings: Settings, query: str, *args: Any) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(query, *args)
    finally:
        await conn.close()
