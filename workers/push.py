"""Push transports: Web Push (RFC 8030, payload encryption RFC 8291, VAPID RFC 8292) and mobile push.

Every transport answers a PushResult from the push service's HTTP status: 2xx sent;
404/410 gone (the subscription is dead and is removed); 429 and 5xx retry, honouring
Retry-After; any other status failed (not retried: the request itself is wrong), redirects
included, which are never followed.

A PushResult's detail is stored as the subscription's last_error and shown to its owner,
so it is always our own fixed wording: never the service's response body or an exception
text, which would turn a push into a way to read other servers' answers.

Web Push endpoints come from clients: WebPushSender only sends to endpoints that
config.push_services allows, and connects only to addresses it checked (see CheckedResolver).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import logging
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver, ResolveResult
from py_vapid import Vapid02
from pywebpush import WebPusher
from yarl import URL

from config import Settings, SettingsError
from config.push_services import EndpointRefused, PushTargets, address_refusal
from config.vapid import load_vapid, vapid_public_key
from storage.push_subscriptions import PushSubscription

log = logging.getLogger(__name__)

Outcome = Literal["sent", "gone", "retry", "failed"]
Urgency = Literal["very-low", "low", "normal", "high"]
# A Retry-After longer than this is clipped: the job's TTL decides whether it is still worth it.
RETRY_AFTER_MAX_S = 3600.0
VAPID_TOKEN_LIFETIME_S = 12 * 3600


@dataclass(frozen=True)
class PushMessage:
    """What goes to one device: a JSON payload, how long the service may hold it, and how."""

    payload: dict[str, Any]
    ttl_s: int
    topic: str | None = None
    urgency: Urgency = "normal"


@dataclass(frozen=True)
class PushResult:
    outcome: Outcome
    status: int | None
    retry_after_s: float | None = None
    detail: str = ""


class PushTransport(Protocol):
    async def send(self, subscription: PushSubscription, message: PushMessage) -> PushResult: ...

    async def close(self) -> None:
        """Release what the transport opened itself (not a session it was given)."""


def topic_for(group_key: str) -> str:
    """A Topic header for a group: a newer push replaces an undelivered older one (32 url-safe chars)."""
    digest = hashlib.sha256(group_key.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:32]


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), RETRY_AFTER_MAX_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when.timestamp() - (time.time() if now is None else now)
    return min(max(delta, 0.0), RETRY_AFTER_MAX_S)


def result_for(status: int, retry_after: str | None) -> PushResult:
    """How a push service's answer is handled; the detail names the status, nothing it sent."""
    detail = f"HTTP {status}"
    if 200 <= status < 300:
        return PushResult("sent", status)
    if status in (404, 410):
        return PushResult("gone", status, detail=detail)
    if status == 429 or status >= 500:
        return PushResult("retry", status, retry_after_seconds(retry_after), detail)
    return PushResult("failed", status, detail=detail)


class TargetRefused(OSError):
    """A push service host resolved to an address the server must not connect to."""


class CheckedResolver(AbstractResolver):
    """The system resolver, refusing a host when any address it resolves to is not allowed.

    The connector connects only to the addresses its resolver returns, so the addresses
    checked here are the ones used: a DNS answer that changes between a check and the
    connection (rebinding) cannot slip a private address in. IP-literal hosts never reach
    a resolver; PushTargets.check_endpoint judges those.
    """

    def __init__(self, allow_private: bool, system: AbstractResolver | None = None) -> None:
        self.allow_private = allow_private
        self._system = system or aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._system.resolve(host, port, family)
        for result in results:
            why = _address_refusal(result["host"], self.allow_private)
            if why is not None:
                # All or nothing: a real push service never resolves to a private address.
                raise TargetRefused(f"{host} resolves to a {why}")
        return results

    async def close(self) -> None:
        await self._system.close()


def _address_refusal(host: str, allow_private: bool) -> str | None:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return "malformed address"
    return address_refusal(address, allow_private)


class WebPushSender:
    """Encrypts each payload for its subscription (aes128gcm) and signs a VAPID token per origin.

    It owns its HTTP session, whose connector resolves through CheckedResolver and which
    ignores proxy variables and keeps no cookies: no caller can hand it a session that
    skips the address checks. close() releases it.
    """

    def __init__(self, vapid: Vapid02, subject: str, targets: PushTargets,
                 timeout_s: float = 10.0, connections: int = 100,
                 system_resolver: AbstractResolver | None = None) -> None:
        self.vapid = vapid
        self.subject = subject
        self.targets = targets
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        resolver = CheckedResolver(targets.allow_private, system_resolver)
        connector = aiohttp.TCPConnector(resolver=resolver, limit=connections)
        self.session = aiohttp.ClientSession(connector=connector, trust_env=False,
                                             cookie_jar=aiohttp.DummyCookieJar())

    @property
    def public_key(self) -> str:
        return vapid_public_key(self.vapid)

    async def close(self) -> None:
        await self.session.close()

    def _request(self, url: URL, subscription: PushSubscription,
                 message: PushMessage) -> tuple[bytes, dict[str, str]]:
        assert subscription.endpoint and subscription.p256dh and subscription.auth
        pusher = WebPusher({"endpoint": subscription.endpoint,
                            "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth}})
        body = pusher.encode(orjson.dumps(message.payload), "aes128gcm")["body"]
        claims = {"sub": self.subject, "aud": str(url.origin()),
                  "exp": int(time.time()) + VAPID_TOKEN_LIFETIME_S}
        headers = {"Content-Encoding": "aes128gcm", "Content-Type": "application/octet-stream",
                   "TTL": str(max(0, message.ttl_s)), "Urgency": message.urgency,
                   **self.vapid.sign(claims)}
        if message.topic:
            headers["Topic"] = message.topic
        return body, headers

    async def send(self, subscription: PushSubscription, message: PushMessage) -> PushResult:
        assert subscription.endpoint is not None
        where = {"subscription_id": str(subscription.id)}
        try:
            # Again at send time: the row may predate the host list or a change to it.
            url = self.targets.check_endpoint(subscription.endpoint)
        except EndpointRefused as exc:
            log.warning("web push endpoint refused", extra={**where, "reason": exc.reason})
            return PushResult("failed", None, detail=f"endpoint not allowed: {exc.message}")
        body, headers = self._request(url, subscription, message)
        try:
            async with self.session.post(url, data=body, headers=headers,
                                         timeout=self.timeout, allow_redirects=False) as resp:
                # The body is never read: nothing the service says is stored or shown.
                return result_for(resp.status, resp.headers.get("Retry-After"))
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, TargetRefused):
                log.warning("web push address refused", extra={**where, "error": str(exc.os_error)})
                return PushResult("failed", None, detail="push service address not allowed")
            log.info("web push service unreachable", extra={**where, "error": repr(exc)})
            return PushResult("retry", None, detail="push service unreachable")
        except TimeoutError:
            return PushResult("retry", None, detail="push service timed out")
        except aiohttp.ClientError as exc:
            log.info("web push request failed", extra={**where, "error": repr(exc)})
            return PushResult("retry", None, detail="push service request failed")


def web_push_sender(settings: Settings, connections: int = 100) -> WebPushSender | None:
    """The Web Push transport the settings describe; None (logged) without a VAPID key."""
    try:
        vapid_key = settings.resolved_vapid_private_key()
    except SettingsError:
        log.warning("no VAPID key: Web Push is off")
        return None
    return WebPushSender(load_vapid(vapid_key), settings.vapid_subject,
                         PushTargets.from_settings(settings), connections=connections)


class HttpMobilePush:
    """FCM/APNs through one HTTP relay: POST {platform, token, title, body, data, ttl_s, ...}.

    The relay (a small gateway holding the FCM and APNs credentials) answers with the
    same statuses as a push service: 2xx sent, 404/410 for a dead token, 429/5xx retry.
    """

    def __init__(self, session: aiohttp.ClientSession, url: str, api_key: str | None = None,
                 timeout_s: float = 10.0) -> None:
        self.session = session
        self.url = url
        self.api_key = api_key
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def send(self, subscription: PushSubscription, message: PushMessage) -> PushResult:
        payload = {"platform": subscription.kind, "token": subscription.token,
                   "title": message.payload.get("title"), "body": message.payload.get("body"),
                   "data": message.payload, "ttl_s": message.ttl_s, "collapse_key": message.topic,
                   "priority": "high" if message.urgency == "high" else "normal"}
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        try:
            async with self.session.post(self.url, data=orjson.dumps(payload), headers=headers,
                                         timeout=self.timeout, allow_redirects=False) as resp:
                return result_for(resp.status, resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("push relay unreachable", extra={"error": repr(exc)})
            return PushResult("retry", None, detail="push relay unreachable")

    async def close(self) -> None:
        """Nothing to release: the session belongs to the caller."""


class OutboxMobilePush:
    """Writes each mobile push as a JSON file: the development default, like the SMS outbox."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _write(self, name: str, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / (name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(self.directory / name)

    async def send(self, subscription: PushSubscription, message: PushMessage) -> PushResult:
        data = orjson.dumps({"platform": subscription.kind, "token": subscription.token,
                             "payload": message.payload, "ttl_s": message.ttl_s,
                             "sent_at": datetime.now(UTC).isoformat()})
        await asyncio.to_thread(self._write, f"{time.time_ns()}.json", data)
        return PushResult("sent", None)

    async def close(self) -> None:
        """Nothing to release."""
