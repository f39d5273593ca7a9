"""Helpers for the slide tests (test_slides.py, test_slides_compose.py): upload videos, make
slides and wait for the worker, follow and block, probe what a client plays."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from config import Settings
from tests.conftest import Account
from tests.handlers.conversation_helpers import ok, rest
from tests.handlers.media_helpers import settled, upload
from tests.media_files import make_video
from workers.media_video import Probe, probe_output

Client = TestClient[Any, Any]


async def video_media(client: Client, account: Account, tmp_path: Path, **kwargs: Any) -> str:
    """The id of a ready video upload of this account."""
    resp = await upload(client, account, make_video(tmp_path, **kwargs))
    assert resp.status == 202, await resp.text()
    media = await settled(client, account, (await resp.json())["id"])
    assert media["status"] == "ready", media
    return str(media["id"])


async def create(client: Client, account: Account, media_id: str, **fields: Any) -> dict[str, Any]:
    return dict(await ok(await rest(client, account, "slide.create",
                                    {"media_id": media_id, **fields}), 201))


async def get(client: Client, account: Account, slide_id: str) -> Any:
    return await rest(client, account, "slide.get", {"slide_id": slide_id})


async def finished(client: Client, account: Account, slide_id: str,
                   timeout: float = 60.0) -> dict[str, Any]:
    """The slide once the worker is done with it (ready or failed), as its author sees it."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        body = dict(await ok(await get(client, account, slide_id)))
        if body["slide"]["status"] != "processing":
            return body
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"slide still processing after {timeout} s")
        await asyncio.sleep(0.1)


async def probe_url(client: Client, account: Account, url: str, work: Path) -> Probe:
    """Download a video the way a client plays it, and probe it."""
    resp = await client.get(url, headers=account.headers)
    assert resp.status == 200, (url, resp.status, await resp.text())
    path = work / f"got-{uuid.uuid4().hex}.mp4"
    path.write_bytes(await resp.read())
    return await probe_output(path, 60)


async def db_execute(settings: Settings, query: str, *args: Any) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(query, *args)
    finally:
        await conn.close()


async def follow(client: Client, follower: Account, followee: Account) -> None:
    await ok(await rest(client, follower, "user.follow", {"user_id": followee.id}))


async def befriend(client: Client, a: Account, b: Account) -> None:
    await ok(await rest(client, a, "friend_request.send", {"user_id": b.id}))
    await ok(await rest(client, b, "friend_request.accept", {"user_id": a.id}))


async def block(client: Client, blocker: Account, blocked: Account) -> None:
    await ok(await rest(client, blocker, "user.block", {"user_id": blocked.id}), 204)


def near(actual: int | None, expected: int, tolerance: int = 250) -> bool:
    return actual is not None and abs(actual - expected) <= tolerance
