"""Notification and push commands, end to end: send -> persistence -> RabbitMQ -> notifications -> push.

Where a test shows someone was *not* notified, a second recipient of the same event is
notified in the same fan-out transaction, and the test waits for that one first.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from config import Settings
from tests.conftest import Account, SocketFactory, signup
from tests.handlers.conversation_helpers import (
    Inbox,
    create_group,
    fields_of,
    is_event,
    ok,
    refused,
    rest,
)
from tests.handlers.item_helpers import create
from tests.handlers.social_helpers import until
from tests.push_standin import BrowserKeys, PushStandIn, standin_settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Pushes here go to the local stand-in, which only the test-only setting lets through."""
    return standin_settings(settings)


@pytest.fixture
async def push_service(aiohttp_server: Any) -> PushStandIn:
    standin = PushStandIn()
    server = await aiohttp_server(standin.app())
    standin.base_url = str(server.make_url("")).rstrip("/")
    return standin


async def notifications(client: Any, account: Account, **params: Any) -> dict[str, Any]:
    page: dict[str, Any] = await ok(await rest(client, account, "notification.list", params))
    return page


def listed(client: Any, account: Account) -> Callable[[], Awaitable[list[dict[str, Any]]]]:
    async def check() -> list[dict[str, Any]]:
        return list((await notifications(client, account))["notifications"])
    return check


async def say(client: Any, sender: Account, conversation_id: str, body: str,
              reply_to: str | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {"conversation_id": conversation_id, "body": body,
                               "client_id": uuid.uuid4().hex}
    if reply_to is not None:
        payload["reply_to"] = reply_to
    sent: dict[str, Any] = await ok(await rest(client, sender, "message.send", payload), 201)
    return sent


async def open_dm(client: Any, a: Account, b: Account) -> str:
    return str((await ok(await rest(client, a, "conversation.open_direct", {"user_id": b.id})))["id"])


async def web_push(client: Any, account: Account, standin: PushStandIn, path: str) -> BrowserKeys:
    keys = BrowserKeys()
    await ok(await rest(client, account, "push.subscribe", {
        "kind": "webpush", "endpoint": standin.base_url + path, "keys": keys.keys()}), 201)
    return keys


async def test_dm_to_an_offline_user_is_stored_and_pushed_encrypted(
    client: Any, push_service: PushStandIn
) -> None:
    alice, bob = await signup(client), await signup(client)
    keys = await web_push(client, bob, push_service, "/wp/bob")
    dm = await open_dm(client, alice, bob)
    await say(client, alice, dm, "are you there?")
    [request] = await push_service.wait_for("/wp/bob")
    assert request.headers["Content-Encoding"] == "aes128gcm"
    assert request.headers["Authorization"].startswith("vapid t=")
    payload = keys.decrypt(request.body)
    assert (payload["kind"], payload["title"], payload["body"]) == \
        ("message", alice.username, "are you there?")
    page = await notifications(client, bob)
    assert page["unread_count"] == 1
    [note] = page["notifications"]
    assert note["kind"] == "message" and note["actor_ids"] == [alice.id]
    assert note["data"]["conversation_id"] == dm and note["id"] == payload["notification_id"]
    assert (await notifications(client, alice))["notifications"] == []


async def test_online_members_get_no_message_notification_offline_ones_do(
    client: Any, connect_socket: SocketFactory
) -> None:
    alice, bob, carol = await signup(client), await signup(client), await signup(client)
    group = await create_group(client, alice, bob, carol)
    bob_inbox = Inbox(await connect_socket(bob.access_token), "notification.new", "message.new")
    await say(client, alice, group["id"], "lunch?")
    [note] = await until(listed(client, carol))
    assert note["kind"] == "message" and note["title"] == "group"
    await bob_inbox.wait_for(is_event("message.new"))
    assert await listed(client, bob)() == []
    assert "notification.new" not in bob_inbox.names()


async def test_mentions_and_replies_notify_online_users_live(
    client: Any, connect_socket: SocketFactory
) -> None:
    alice, bob = await signup(client), await signup(client)
    group = await create_group(client, alice, bob)
    alice_inbox = Inbox(await connect_socket(alice.access_token), "notification.new")
    bob_inbox = Inbox(await connect_socket(bob.access_token), "notification.new")
    question = await say(client, alice, group["id"], f"@{bob.username} are you coming?")
    await bob_inbox.wait_for(is_event("notification.new"))
    event = bob_inbox.events[0][1]
    assert event["unread_count"] == 1
    assert event["notification"]["kind"] == "mention"
    assert event["notification"]["body"] == f"@{bob.username} are you coming?"
    await say(client, bob, group["id"], "yes!", reply_to=question["id"])
    await alice_inbox.wait_for(is_event("notification.new"))
    reply = alice_inbox.events[0][1]["notification"]
    assert reply["kind"] == "reply" and reply["title"] == f"{bob.username} replied to your message"


async def test_preferences_off_means_no_notification(client: Any) -> None:
    alice, bob, carol = await signup(client), await signup(client), await signup(client)
    group = await create_group(client, alice, bob, carol)
    await ok(await rest(client, bob, "notification.set_preferences", {"changes": [
        {"kind": "message", "channel": "in_app", "enabled": False}]}))
    await say(client, alice, group["id"], "anyone?")
    await until(listed(client, carol))
    assert await listed(client, bob)() == []


async def test_muted_conversation_notifies_nothing_not_even_mentions(client: Any) -> None:
    alice, bob, carol = await signup(client), await signup(client), await signup(client)
    group = await create_group(client, alice, bob, carol)
    await ok(await rest(client, bob, "conversation.mute", {"conversation_id": group["id"]}))
    await say(client, alice, group["id"], f"@{bob.username} @{carol.username} look")
    [note] = await until(listed(client, carol))
    assert note["kind"] == "mention"
    assert await listed(client, bob)() == []


async def test_quiet_hours_store_in_app_but_hold_the_push(
    client: Any, push_service: PushStandIn
) -> None:
    alice, bob, carol = await signup(client), await signup(client), await signup(client)
    group = await create_group(client, alice, bob, carol)
    now = datetime.now(UTC)
    await ok(await rest(client, bob, "notification.set_quiet_hours", {
        "start": (now - timedelta(hours=2)).strftime("%H:%M"),
        "end": (now + timedelta(hours=2)).strftime("%H:%M"), "timezone": "UTC"}))
    await web_push(client, bob, push_service, "/wp/bob")
    await web_push(client, carol, push_service, "/wp/carol")
    await say(client, alice, group["id"], "late night thought")
    await push_service.wait_for("/wp/carol")
    [note] = await until(listed(client, bob))
    assert note["kind"] == "message"
    assert push_service.to("/wp/bob") == []


async def test_reactions_group_into_one_notification_until_read(
    client: Any, connect_socket: SocketFactory
) -> None:
    alice, bob, carol, dave = [await signup(client) for _ in range(4)]
    group = await create_group(client, alice, bob, carol, dave)
    inbox = Inbox(await connect_socket(alice.access_token), "notification.new")
    sent = await say(client, alice, group["id"], "I passed the exam")
    for who, emoji in ((bob, "🎉"), (carol, "👍"), (dave, "🎉"), (bob, "👍")):
        await ok(await rest(client, who, "message.react", {"message_id": sent["id"], "emoji": emoji}))

    async def grown() -> list[dict[str, Any]]:
        items = await listed(client, alice)()
        return items if items and items[0]["count"] == 4 else []

    [note] = await until(grown)
    assert (note["kind"], note["actor_count"]) == ("reaction", 3)
    # Jobs run concurrently, so the latest actor is any of them; each is named once.
    assert sorted(note["actor_ids"]) == sorted([bob.id, carol.id, dave.id])
    latest = {bob.id: bob, carol.id: carol, dave.id: dave}[note["actor_ids"][0]].username
    assert note["title"] in {f"{latest} and 2 others reacted {e} to your message" for e in "🎉👍"}
    assert note["subject"] == {"type": "message", "id": sent["id"]}
    await inbox.wait_for(lambda n, d: n == "notification.new" and d["notification"]["count"] == 4)
    assert {d["unread_count"] for _, d in inbox.events} == {1}
    # Reacting again with the same emoji changes nothing; once read, a new reaction starts anew.
    await ok(await rest(client, bob, "message.react", {"message_id": sent["id"], "emoji": "🎉"}))
    await ok(await rest(client, alice, "notification.mark_read", {"ids": [note["id"]]}))
    await ok(await rest(client, carol, "message.react", {"message_id": sent["id"], "emoji": "❤️"}))
    newer, older = await until(lambda: _two(client, alice))
    assert (newer["count"], newer["read_at"]) == (1, None)
    assert older["id"] == note["id"] and older["count"] == 4 and older["read_at"] is not None


async def test_comments_on_one_item_group_into_one_notification_until_read(client: Any) -> None:
    alice, bob, carol = await signup(client), await signup(client), await signup(client)
    post = await create(client, alice, body="my first post")
    other = await create(client, alice, body="another post")
    for who in (bob, carol):
        await create(client, who, kind="comment", body=f"nice, from {who.username}",
                     parent_id=post["id"])
    await create(client, bob, kind="comment", body="and this one", parent_id=other["id"])

    async def folded() -> list[dict[str, Any]]:
        # Three comments were made; wait until all three are folded in, however grouped.
        items = await listed(client, alice)()
        return items if sum(n["count"] for n in items) == 3 else []

    notes = await until(folded)
    assert len(notes) == 2, notes
    [on_post] = [n for n in notes if n["data"]["parent_id"] == post["id"]]
    assert (on_post["kind"], on_post["count"], on_post["actor_count"]) == ("reply", 2, 2)
    assert sorted(on_post["actor_ids"]) == sorted([bob.id, carol.id])
    assert on_post["group_key"] == f"reply:item:{post['id']}"
    latest = {bob.id: bob, carol.id: carol}[on_post["actor_ids"][0]].username
    assert on_post["title"] == f"{latest} and 1 other commented on your post"
    assert (await notifications(client, alice))["unread_count"] == 2


async def _two(client: Any, account: Account) -> list[dict[str, Any]]:
    items = await listed(client, account)()
    return items if len(items) == 2 else []


async def test_gone_subscription_is_removed_and_rate_limit_is_honoured(
    client: Any, push_service: PushStandIn
) -> None:
    alice, bob, carol = await signup(client), await signup(client), await signup(client)
    await web_push(client, bob, push_service, "/wp/bob")
    await web_push(client, carol, push_service, "/wp/carol")
    push_service.answer("/wp/bob", (410, {}))
    push_service.answer("/wp/carol", (429, {"Retry-After": "1"}))
    await say(client, alice, await open_dm(client, alice, bob), "hi bob")
    await say(client, alice, await open_dm(client, alice, carol), "hi carol")

    async def bob_unsubscribed() -> bool:
        listed = await ok(await rest(client, bob, "push.list_subscriptions"))
        return bool(listed["subscriptions"] == [])

    await push_service.wait_for("/wp/bob")
    await until(bob_unsubscribed)
    # The queue retries carol's push, not before the Retry-After second has passed.
    first, second = await push_service.wait_for("/wp/carol", 2, timeout=30)
    assert second.at - first.at >= 0.9

    async def carol_succeeded() -> dict[str, Any] | None:
        [sub] = (await ok(await rest(client, carol, "push.list_subscriptions")))["subscriptions"]
        return sub if sub["last_success_at"] is not None else None

    # The stand-in logs a request before it answers, so the worker records the 201 only
    # after wait_for returns: poll for the success instead of reading it once.
    sub = await until(carol_succeeded)
    assert sub["last_error"] is None


async def test_mark_read_unread_count_and_pagination(
    client: Any, connect_socket: SocketFactory
) -> None:
    alice, bob = await signup(client), await signup(client)
    group = await create_group(client, alice, bob)
    other_device = Inbox(await connect_socket(bob.access_token), "notification.read")
    for n in range(3):
        await say(client, alice, group["id"], f"@{bob.username} ping {n}")

    async def three() -> list[dict[str, Any]]:
        items = await listed(client, bob)()
        return items if len(items) == 3 else []

    newest, middle, oldest = await until(three)
    # Newest first; the worker handles jobs concurrently, so not necessarily in send order.
    assert int(newest["cursor"]) > int(middle["cursor"]) > int(oldest["cursor"])
    assert {n["body"] for n in (newest, middle, oldest)} == \
        {f"@{bob.username} ping {n}" for n in range(3)}
    assert (await ok(await rest(client, bob, "notification.count_unread"))) == {"unread_count": 3}
    page = await notifications(client, bob, limit=2)
    assert [n["id"] for n in page["notifications"]] == [newest["id"], middle["id"]]
    rest_of = await notifications(client, bob, limit=2, cursor=page["next_cursor"])
    assert [n["id"] for n in rest_of["notifications"]] == [oldest["id"]]
    assert rest_of["next_cursor"] is None

    marked = await ok(await rest(client, bob, "notification.mark_read", {"ids": [newest["id"]]}))
    assert marked == {"marked": [newest["id"]], "unread_count": 2}
    await other_device.wait_for(is_event("notification.read", ids=[newest["id"]], unread_count=2))
    again = await ok(await rest(client, bob, "notification.mark_read", {"ids": [newest["id"]]}))
    assert again == {"marked": [], "unread_count": 2}
    marked = await ok(await rest(client, bob, "notification.mark_read", {"up_to": middle["id"]}))
    assert set(marked["marked"]) == {middle["id"], oldest["id"]} and marked["unread_count"] == 0
    assert (await ok(await rest(client, bob, "notification.count_unread")))["unread_count"] == 0
    # Someone else's notification is not found, and marking it changes nothing.
    await refused(await rest(client, alice, "notification.mark_read", {"up_to": middle["id"]}),
                  404, "not_found")
    assert (await ok(await rest(client, alice, "notification.mark_read", {"ids": [oldest["id"]]})))[
        "marked"] == []


async def test_preferences_and_quiet_hours_round_trip(client: Any) -> None:
    bob = await signup(client)
    prefs = await ok(await rest(client, bob, "notification.get_preferences"))
    kinds = {p["kind"]: p for p in prefs["preferences"]}
    assert set(kinds) == {"message", "mention", "reply", "reaction", "follow", "friend_request",
                          "share", "quote", "clique_invite", "story_reply", "system"}
    assert kinds["reaction"] == {"kind": "reaction", "in_app": True, "push": True, "email": False,
                                 "sms": False}
    assert prefs["quiet_hours"] is None
    changed = await ok(await rest(client, bob, "notification.set_preferences", {"changes": [
        {"kind": "reaction", "channel": "push", "enabled": False},
        {"kind": "system", "channel": "email", "enabled": True}]}))
    kinds = {p["kind"]: p for p in changed["preferences"]}
    assert kinds["reaction"]["push"] is False and kinds["system"]["email"] is True
    assert kinds["message"]["push"] is True
    quiet = await ok(await rest(client, bob, "notification.set_quiet_hours",
                                {"start": "22:30", "end": "07:00", "timezone": "Europe/Paris"}))
    assert quiet["quiet_hours"] == {"start": "22:30:00", "end": "07:00:00",
                                    "timezone": "Europe/Paris"}
    assert (await ok(await rest(client, bob, "notification.get_preferences")))["quiet_hours"] == \
        quiet["quiet_hours"]
    cleared = await ok(await rest(client, bob, "notification.clear_quiet_hours"))
    assert cleared["quiet_hours"] is None


async def test_push_subscriptions_commands(client: Any, push_service: PushStandIn) -> None:
    bob, carol = await signup(client), await signup(client)
    config = await ok(await client.get("/v1/push/config"))
    assert len(config["vapid_public_key"]) == 87 and config["mobile_push"] == "outbox"
    keys = BrowserKeys()
    body = {"kind": "webpush", "endpoint": push_service.base_url + "/wp/x", "keys": keys.keys()}
    first = await ok(await rest(client, bob, "push.subscribe", body), 201)
    again = await ok(await rest(client, bob, "push.subscribe", body), 201)
    assert first["id"] == again["id"]
    token = await ok(await rest(client, bob, "push.subscribe",
                                {"kind": "apns", "token": "a" * 64}), 201)
    assert token["token_tail"] == "aaaaaa" and token["endpoint"] is None
    subs = (await ok(await rest(client, bob, "push.list_subscriptions")))["subscriptions"]
    assert {s["id"] for s in subs} == {first["id"], token["id"]}
    # The same browser, now logged in as carol, moves over to her.
    await ok(await rest(client, carol, "push.subscribe", body), 201)
    subs = (await ok(await rest(client, bob, "push.list_subscriptions")))["subscriptions"]
    assert [s["id"] for s in subs] == [token["id"]]
    await ok(await rest(client, bob, "push.unsubscribe", {"token": "a" * 64}), 204)
    await ok(await rest(client, bob, "push.unsubscribe", {"token": "a" * 64}), 204)
    assert (await ok(await rest(client, bob, "push.list_subscriptions")))["subscriptions"] == []
    assert len((await ok(await rest(client, carol, "push.list_subscriptions")))["subscriptions"]) == 1


async def test_logging_out_stops_pushes_to_that_device(client: Any, push_service: PushStandIn) -> None:
    alice, bob = await signup(client), await signup(client)
    await web_push(client, bob, push_service, "/wp/old-session")
    await ok(await client.post("/v1/auth/logout", json={"refresh_token": bob.refresh_token}), 204)
    login = await ok(await client.post("/v1/auth/login", json={"login": bob.username,
                                                               "password": bob.password}))
    bob.access_token = login["access_token"]
    await web_push(client, bob, push_service, "/wp/new-session")
    await say(client, alice, await open_dm(client, alice, bob), "hello")
    await push_service.wait_for("/wp/new-session")
    assert push_service.to("/wp/old-session") == []


KEYS = BrowserKeys().keys()
BAD_INPUT: list[tuple[str, dict[str, Any], str]] = [
    ("notification.list", {"limit": 0}, "limit"),
    ("notification.list", {"limit": 51}, "limit"),
    ("notification.list", {"cursor": "abc"}, "cursor"),
    ("notification.list", {"cursor": "1", "extra": 1}, "extra"),
    ("notification.mark_read", {}, "(body)"),
    ("notification.mark_read", {"ids": [str(uuid.uuid4())], "up_to": str(uuid.uuid4())}, "(body)"),
    ("notification.mark_read", {"ids": []}, "ids"),
    ("notification.mark_read", {"ids": ["nope"]}, "ids.0"),
    ("notification.mark_read", {"ids": [str(uuid.uuid4())] * 101}, "ids"),
    ("notification.mark_read", {"up_to": "nope"}, "up_to"),
    ("notification.count_unread", {"extra": 1}, "extra"),
    ("notification.get_preferences", {"extra": 1}, "extra"),
    ("notification.set_preferences", {}, "changes"),
    ("notification.set_preferences", {"changes": []}, "changes"),
    ("notification.set_preferences",
     {"changes": [{"kind": "nope", "channel": "push", "enabled": True}]}, "changes.0.kind"),
    ("notification.set_preferences",
     {"changes": [{"kind": "message", "channel": "fax", "enabled": True}]}, "changes.0.channel"),
    ("notification.set_preferences",
     {"changes": [{"kind": "message", "channel": "push", "enabled": "maybe"}]}, "changes.0.enabled"),
    ("notification.set_quiet_hours", {"start": "22:00", "end": "07:00"}, "timezone"),
    ("notification.set_quiet_hours",
     {"start": "22:00", "end": "07:00", "timezone": "Mars/Olympus"}, "timezone"),
    ("notification.set_quiet_hours", {"start": "25:00", "end": "07:00", "timezone": "UTC"}, "start"),
    ("notification.set_quiet_hours",
     {"start": "22:00+01:00", "end": "07:00", "timezone": "UTC"}, "start"),
    ("notification.set_quiet_hours", {"start": "07:00", "end": "07:00", "timezone": "UTC"}, "(body)"),
    ("notification.clear_quiet_hours", {"extra": 1}, "extra"),
    ("push.get_config", {"extra": 1}, "extra"),
    ("push.list_subscriptions", {"extra": 1}, "extra"),
    ("push.subscribe", {"kind": "pigeon", "token": "x"}, "kind"),
    ("push.subscribe", {"kind": "webpush", "endpoint": "https://push.example/x"}, "(body)"),
    ("push.subscribe", {"kind": "webpush", "endpoint": "ftp://push.example/x", "keys": KEYS},
     "endpoint"),
    ("push.subscribe", {"kind": "webpush", "endpoint": "https://push.example/x",
                        "keys": {**KEYS, "p256dh": "A" * 87}}, "keys.p256dh"),
    ("push.subscribe", {"kind": "webpush", "endpoint": "https://push.example/x",
                        "keys": {**KEYS, "auth": "A" * 30}}, "keys.auth"),
    ("push.subscribe", {"kind": "webpush", "endpoint": "https://push.example/x",
                        "keys": {"p256dh": KEYS["p256dh"]}}, "keys.auth"),
    ("push.subscribe", {"kind": "fcm", "token": "t", "endpoint": "https://push.example/x"},
     "(body)"),
    ("push.subscribe", {"kind": "apns", "token": "has space"}, "token"),
    ("push.subscribe", {"kind": "fcm", "token": "x" * 4097}, "token"),
    ("push.unsubscribe", {}, "(body)"),
    ("push.unsubscribe", {"endpoint": "https://push.example/x", "token": "t"}, "(body)"),
]


@pytest.mark.parametrize(("name", "payload", "field"), BAD_INPUT,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(BAD_INPUT)])
async def test_bad_input(client: Any, account: Account, connect_socket: SocketFactory,
                         name: str, payload: dict[str, Any], field: str) -> None:
    sio = await connect_socket(account.access_token)
    ack = await sio.call(name, payload, timeout=10)
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_input", ack
    assert field in fields_of(ack["error"]), ack["error"]


def test_every_notification_command_has_a_bad_input_case() -> None:
    from server.app import command_registry

    mine = {c.name for c in command_registry() if c.name.split(".")[0] in ("notification", "push")}
    assert mine == {name for name, _, _ in BAD_INPUT}


async def test_commands_need_a_user(client: Any) -> None:
    for path, method in (("/v1/notifications", "GET"), ("/v1/notifications/read", "POST"),
                         ("/v1/push/subscriptions", "POST")):
        await refused(await client.request(method, path, json={}), 401, "unauthorized")
