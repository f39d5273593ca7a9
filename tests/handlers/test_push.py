"""push.subscribe accepts only known push services; what a push service answers never comes back."""

from __future__ import annotations

from typing import Any

import pytest

from config import Settings
from tests.conftest import AppFactory, signup
from tests.handlers.conversation_helpers import ok, refused, rest
from tests.handlers.social_helpers import until
from tests.push_standin import BrowserKeys, PushStandIn, standin_overrides

SECRET = "internal: db=10.0.0.7 password=hunter2"


@pytest.mark.parametrize(("endpoint", "reason"), [
    ("https://push.evil.example/wp/abc", "url_host"),
    ("https://fcm.googleapis.com.evil.example/wp/abc", "url_host"),
    ("http://fcm.googleapis.com/fcm/send/abc", "url_scheme"),
    ("https://127.0.0.1/wp/abc", "url_host"),
    ("https://[::1]/wp/abc", "url_host"),
    ("https://169.254.169.254/latest/meta-data", "url_host"),
    ("https://localhost/wp/abc", "url_host"),
    ("https://fcm.googleapis.com:8443/fcm/send/abc", "url_port"),
    ("https://me:pw@fcm.googleapis.com/fcm/send/abc", "url"),
])
async def test_subscribe_refuses_endpoints_off_the_push_service_list(
    client: Any, settings: Settings, endpoint: str, reason: str
) -> None:
    # The tests' default settings are dev mode, where these used to be accepted.
    assert settings.env == "dev" and not settings.push_allow_private_targets
    account = await signup(client)
    error = await refused(await rest(client, account, "push.subscribe", {
        "kind": "webpush", "endpoint": endpoint, "keys": BrowserKeys().keys()}), 400,
        "invalid_input")
    [field] = error["details"]["fields"]
    assert (field["field"], field["type"]) == ("endpoint", reason), error
    assert (await ok(await rest(client, account, "push.list_subscriptions")))["subscriptions"] == []


async def test_subscribe_accepts_a_known_push_service(client: Any) -> None:
    account = await signup(client)
    endpoint = "https://fcm.googleapis.com/fcm/send/dQw4w9WgXcQ:APA91bH"
    sub = await ok(await rest(client, account, "push.subscribe", {
        "kind": "webpush", "endpoint": endpoint, "keys": BrowserKeys().keys()}), 201)
    assert sub["endpoint"] == endpoint and sub["last_error"] is None


async def test_the_host_list_is_configurable(make_client: AppFactory) -> None:
    client = await make_client(push_service_hosts=["*.push.example.net"])
    account = await signup(client)
    for endpoint, status in (("https://eu.push.example.net/s/1", 201),
                             ("https://fcm.googleapis.com/fcm/send/1", 400)):
        resp = await rest(client, account, "push.subscribe", {
            "kind": "webpush", "endpoint": endpoint, "keys": BrowserKeys().keys()})
        assert resp.status == status, await resp.text()


async def test_a_failing_push_service_body_never_reaches_the_user(
    make_client: AppFactory, settings: Settings, aiohttp_server: Any
) -> None:
    standin = PushStandIn()
    standin.reply_body = SECRET.encode()
    standin.base_url = str((await aiohttp_server(standin.app())).make_url("")).rstrip("/")
    client = await make_client(**standin_overrides(settings))
    account = await signup(client)
    await ok(await rest(client, account, "push.subscribe", {
        "kind": "webpush", "endpoint": f"{standin.base_url}/wp/bad", "keys": BrowserKeys().keys()}),
        201)
    standin.answer("/wp/bad", (400, {}))
    # The user-triggered path: a test push to your own devices.
    await ok(await client.post("/v1/outreach/test_send/me", json={"channel": "push"},
                               headers=account.headers), 202)
    await standin.wait_for("/wp/bad")

    async def failed() -> Any:
        resp = await rest(client, account, "push.list_subscriptions")
        text = await resp.text()
        assert SECRET not in text and "hunter2" not in text
        [sub] = (await ok(resp))["subscriptions"]
        return sub["last_error"]

    assert await until(failed) == "HTTP 400"
