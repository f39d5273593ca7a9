"""Web Push at send time: checked and pinned addresses, no redirects, no response text kept."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from config.push_services import DEFAULT_PUSH_SERVICE_HOSTS, PushTargets
from config.vapid import load_vapid
from storage.push_subscriptions import PushSubscription
from tests.push_standin import STANDIN_HOST, BrowserKeys, PushStandIn
from workers.push import (
    CheckedResolver,
    HttpMobilePush,
    PushMessage,
    TargetRefused,
    WebPushSender,
)

SECRET = b"internal: db=10.0.0.7 password=hunter2"
MESSAGE = PushMessage({"title": "hi"}, 60)


class FixedResolver(AbstractResolver):
    """Answers every name with the same addresses, as a DNS server under someone's control."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        return [ResolveResult(hostname=host, host=a, port=port,
                              family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                              proto=0, flags=0) for a in self.addresses]

    async def close(self) -> None:
        pass


def subscription(endpoint: str, keys: BrowserKeys | None = None) -> PushSubscription:
    keys = keys or BrowserKeys()
    return PushSubscription(
        id=uuid.uuid4(), user_id=uuid.uuid4(), session_id=None, kind="webpush",
        endpoint=endpoint, p256dh=keys.p256dh, auth=keys.auth, token=None,
        created_at=datetime.now(UTC), last_success_at=None, last_error=None, backoff_until=None)


def vapid_pem() -> str:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()


async def sender(targets: PushTargets, dns: AbstractResolver | None = None) -> WebPushSender:
    return WebPushSender(load_vapid(vapid_pem()), "mailto:ops@example.com", targets, timeout_s=5,
                         system_resolver=dns)


@pytest.fixture
async def standin(aiohttp_server: Any) -> PushStandIn:
    service = PushStandIn()
    service.reply_body = SECRET
    server = await aiohttp_server(service.app())
    service.base_url = str(server.make_url("")).rstrip("/")
    return service


@pytest.fixture
async def to_standin() -> AsyncIterator[WebPushSender]:
    web_push = await sender(PushTargets((STANDIN_HOST,), allow_private=True))
    yield web_push
    await web_push.close()


async def test_a_host_resolving_to_loopback_is_refused_without_the_test_setting() -> None:
    with pytest.raises(TargetRefused, match="loopback"):
        await CheckedResolver(allow_private=False).resolve("localhost", 443, socket.AF_INET)
    [answer] = await CheckedResolver(allow_private=True).resolve("localhost", 443, socket.AF_INET)
    assert answer["host"] == "127.0.0.1"


@pytest.mark.parametrize("addresses", [
    ("10.0.0.7",), ("169.254.169.254",), ("::ffff:127.0.0.1",), ("0.0.0.0",),
    # One bad address among good ones refuses the host: the connector might pick it.
    ("142.250.74.106", "192.168.0.1"),
])
async def test_resolved_private_addresses_are_refused(addresses: tuple[str, ...]) -> None:
    resolver = CheckedResolver(allow_private=False, system=FixedResolver(*addresses))
    with pytest.raises(TargetRefused):
        await resolver.resolve("fcm.googleapis.com", 443)
    public = CheckedResolver(allow_private=False, system=FixedResolver("142.250.74.106"))
    assert [r["host"] for r in await public.resolve("fcm.googleapis.com", 443)] == \
        ["142.250.74.106"]


async def test_a_listed_host_that_resolves_to_loopback_gets_no_request() -> None:
    # "localhost" stands for a listed push service whose DNS answer turned private.
    web_push = await sender(PushTargets(("localhost",)))
    try:
        result = await web_push.send(subscription("https://localhost/wp/x"), MESSAGE)
    finally:
        await web_push.close()
    assert (result.outcome, result.status) == ("failed", None)
    assert result.detail == "push service address not allowed"


async def test_the_sender_connects_only_to_the_addresses_it_checked(standin: PushStandIn) -> None:
    # A listed name whose DNS answer is loopback (as after a rebinding): nothing is sent.
    dns = FixedResolver(STANDIN_HOST)
    web_push = await sender(PushTargets(("push.test",)), dns)
    try:
        result = await web_push.send(subscription("https://push.test/wp/pinned"), MESSAGE)
    finally:
        await web_push.close()
    assert (result.outcome, result.detail) == ("failed", "push service address not allowed")
    assert standin.received == []
    # With the test setting the same answer is allowed, and the request goes to that
    # address (push.test exists in no DNS), still naming the host it was sent for.
    port = standin.base_url.rsplit(":", 1)[1]
    web_push = await sender(PushTargets(("push.test",), allow_private=True), dns)
    try:
        result = await web_push.send(subscription(f"http://push.test:{port}/wp/pinned"), MESSAGE)
    finally:
        await web_push.close()
    assert result.outcome == "sent", result
    [request] = standin.to("/wp/pinned")
    assert request.headers["Host"] == f"push.test:{port}"


async def test_endpoints_off_the_list_are_refused_at_send_time_too() -> None:
    web_push = await sender(PushTargets(DEFAULT_PUSH_SERVICE_HOSTS))
    try:
        for endpoint in ("https://evil.example/wp", "https://127.0.0.1/wp",
                         "http://fcm.googleapis.com/fcm/send/x"):
            result = await web_push.send(subscription(endpoint), MESSAGE)
            assert result.outcome == "failed" and result.detail.startswith("endpoint not allowed")
    finally:
        await web_push.close()


async def test_redirects_are_not_followed(standin: PushStandIn, to_standin: WebPushSender) -> None:
    standin.answer("/wp/moved", (307, {"Location": "http://169.254.169.254/latest/meta-data"}))
    result = await to_standin.send(subscription(f"{standin.base_url}/wp/moved"), MESSAGE)
    assert (result.outcome, result.detail) == ("failed", "HTTP 307")
    assert len(standin.received) == 1


@pytest.mark.parametrize(("status", "outcome"), [
    (400, "failed"), (403, "failed"), (410, "gone"), (429, "retry"), (500, "retry")])
async def test_the_response_body_is_never_kept(
    standin: PushStandIn, to_standin: WebPushSender, status: int, outcome: str
) -> None:
    keys = BrowserKeys()
    standin.answer("/wp/fails", (status, {}))
    result = await to_standin.send(subscription(f"{standin.base_url}/wp/fails", keys), MESSAGE)
    assert (result.outcome, result.status, result.detail) == (outcome, status, f"HTTP {status}")
    [request] = standin.to("/wp/fails")
    assert keys.decrypt(request.body) == {"title": "hi"}


async def test_the_mobile_relay_body_is_never_kept(standin: PushStandIn) -> None:
    async with aiohttp.ClientSession() as session:
        relay = HttpMobilePush(session, standin.base_url + "/relay")
        standin.answer("/relay", (400, {}))
        fcm = PushSubscription(
            id=uuid.uuid4(), user_id=uuid.uuid4(), session_id=None, kind="fcm", endpoint=None,
            p256dh=None, auth=None, token="t", created_at=datetime.now(UTC),
            last_success_at=None, last_error=None, backoff_until=None)
        assert (await relay.send(fcm, MESSAGE)).detail == "HTTP 400"
        standin.answer("/relay", (307, {"Location": "/elsewhere"}))
        assert (await relay.send(fcm, MESSAGE)).outcome == "failed"
        assert standin.to("/elsewhere") == []


async def test_connection_errors_are_described_in_our_words(to_standin: WebPushSender) -> None:
    with socket.socket() as probe:
        probe.bind((STANDIN_HOST, 0))
        port = probe.getsockname()[1]  # nothing listens there once the socket closes
    result = await to_standin.send(subscription(f"http://{STANDIN_HOST}:{port}/wp"), MESSAGE)
    assert (result.outcome, result.detail) == ("retry", "push service unreachable")
