"""Test helpers for outreach: a Twilio API stand-in, a refusing SMTP server, admins, polling."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

import aio_pika
import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient

from config import Settings
from tests.conftest import AMQP_URL, Account, free_port

TWILIO_SID = "ACtest0123456789"
TWILIO_TOKEN = "twilio-test-token"
TWILIO_FROM = "+15005550006"


@dataclass
class TwilioStandIn:
    """The Messages API of Twilio, answering from a script of (status, headers) replies."""

    base_url: str = ""
    received: list[dict[str, str]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
        if request.match_info["sid"] != TWILIO_SID or request.headers.get("Authorization") != expected:
            return web.json_response({"code": 20003, "message": "Authenticate"}, status=401)
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.arrivals.append(time.monotonic())
        status, headers = self.script.pop(0) if self.script else (201, {})
        if status == 201:
            self.received.append(form)
            return web.json_response({"sid": f"SM{len(self.received)}", "status": "queued",
                                      "to": form.get("To"), "body": form.get("Body")}, status=201)
        return web.json_response({"code": 20000 + status, "message": "scripted"}, status=status,
                                 headers=headers)

    def to(self, phone: str) -> list[str]:
        return [m["Body"] for m in self.received if m.get("To") == phone]

    def settings(self) -> dict[str, Any]:
        """Settings overrides that send SMS here."""
        return {"sms_provider": "twilio", "twilio_base_url": self.base_url,
                "twilio_account_sid": TWILIO_SID, "twilio_auth_token": TWILIO_TOKEN,
                "twilio_from": TWILIO_FROM, "twilio_timeout_s": 5.0}


@asynccontextmanager
async def twilio_standin() -> AsyncIterator[TwilioStandIn]:
    standin = TwilioStandIn()
    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", standin.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    standin.base_url = f"http://127.0.0.1:{port}"
    try:
        yield standin
    finally:
        await runner.cleanup()


async def set_role(settings: Settings, user_id: str, role: str) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute("UPDATE users SET role = $2 WHERE id = $1::uuid", user_id, role)
    finally:
        await conn.close()


async def sql(settings: Settings, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def make_admin(settings: Settings, account: Account) -> Account:
    await set_role(settings, account.id, "admin")
    return account


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    """Poll an async condition until it holds; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def call(client: TestClient[Any, Any], method: str, path: str, account: Account | None,
               body: Any = None, status: int = 200) -> Any:
    """A REST call that must answer `status`; returns the JSON body."""
    headers = account.headers if account is not None else {}
    resp = await client.request(method, path, json=body, headers=headers)
    assert resp.status == status, await resp.text()
    return None if resp.status == 204 else await resp.json()


def header_link(msg: Message) -> str:
    """The URL inside a List-Unsubscribe header."""
    value = str(msg["List-Unsubscribe"])
    assert value.startswith("<") and value.endswith(">"), value
    return value[1:-1]


async def drop_queues(namespace: str, *queues: str) -> None:
    """Delete queues the shared fixtures do not know about (main, retries, dead)."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for queue in queues:
            for suffix in ("", ".dead", *(f".retry.{n}" for n in range(1, 12))):
                try:
                    await channel.queue_delete(f"{namespace}.{queue}{suffix}")
                except aio_pika.exceptions.ChannelClosed:
                    channel = await connection.channel()
