"""A local stand-in for push services (Web Push endpoints and a mobile push relay) and test keys.

The stand-in listens on plain http on 127.0.0.1, which the server refuses as a push target
unless the test-only HOTSPOT_PUSH_ALLOW_PRIVATE_TARGETS is on and 127.0.0.1 is on the push
service host list: tests that push to it use standin_settings().
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from dataclasses import dataclass, field
from typing import Any

import http_ece
import orjson
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from config import Settings

STANDIN_HOST = "127.0.0.1"


def standin_overrides(settings: Settings) -> dict[str, Any]:
    """The settings that let Web Push reach the local stand-in (tests only)."""
    return {"push_allow_private_targets": True,
            "push_service_hosts": [*settings.push_service_hosts, STANDIN_HOST]}


def standin_settings(settings: Settings) -> Settings:
    return settings.model_copy(update=standin_overrides(settings))


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass
class BrowserKeys:
    """A Web Push subscription's key pair and auth secret, as a browser would make them."""

    private: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    auth_secret: bytes = field(default_factory=lambda: os.urandom(16))

    @property
    def p256dh(self) -> str:
        return b64url(self.private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))

    @property
    def auth(self) -> str:
        return b64url(self.auth_secret)

    def keys(self) -> dict[str, str]:
        return {"p256dh": self.p256dh, "auth": self.auth}

    def decrypt(self, body: bytes) -> dict[str, Any]:
        plain = http_ece.decrypt(body, private_key=self.private, auth_secret=self.auth_secret,
                                 version="aes128gcm")
        data: dict[str, Any] = orjson.loads(plain)
        return data


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class PushStandIn:
    """Records every POST; answers each path from its script (default 201), e.g. 410 or 429.

    Every answer carries reply_body, so a test can show that nothing a push service says
    reaches a user.
    """

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.scripts: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self.reply_body = b""
        self._changed = asyncio.Event()
        self.base_url = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(Received(request.path, dict(request.headers), body, time.monotonic()))
        self._changed.set()
        script = self.scripts.get(request.path)
        status, headers = script.pop(0) if script else (201, {})
        return web.Response(status=status, headers=headers, body=self.reply_body)

    def answer(self, path: str, *replies: tuple[int, dict[str, str]]) -> None:
        """Answer the next requests to path with these (status, headers), then 201."""
        self.scripts[path] = list(replies)

    def to(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def wait_for(self, path: str, count: int = 1, timeout: float = 15.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.to(path)) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{len(self.to(path))} requests to {path}, wanted {count}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                pass
        return self.to(path)
