"""Live item subscriptions over python-socketio: item.updated, comment.new batches, limits,
coalescing, unsubscribe and disconnect, blocks, and two nodes sharing Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis
import socketio

from config import Rates, Settings
from handlers.context import Services
from server.app import command_registry
from server.resources import SERVICES
from tests.conftest import AppFactory, SocketFactory, signup
from tests.handlers.conversation_helpers import Inbox, is_event, ok, rest
from tests.handlers.item_helpers import block, create

EVENTS = ("item.updated", "comment.new")


@pytest.fixture
async def client(make_client: AppFactory, settings: Settings) -> Any:
    """The app, with room for many sign-ups and posts from one address (test_engagement.py)."""
    return await make_client(rates=Rates(signup=(500, 3600), item_create=(500, 60)))


def services_of(client: Any) -> Services:
    services: Services = client.server.app[SERVICES]
    return services


async def call(sio: socketio.AsyncClient, name: str, payload: dict[str, Any]) -> dict[str, Any]:
    reply: dict[str, Any] = await sio.call(name, payload, timeout=10)
    return reply


async def subscribed(sio: socketio.AsyncClient, item_id: str) -> dict[str, Any]:
    reply = await call(sio, "item.subscribe", {"item_id": item_id})
    assert reply["ok"], reply
    data: dict[str, Any] = reply["data"]
    return data


async def react(client: Any, account: Any, item_id: str, kind: str = "like") -> dict[str, Any]:
    answer: dict[str, Any] = await ok(await rest(client, account, "item.react",
                                                 {"item_id": item_id, "kind": kind}))
    return answer


def updates(inbox: Inbox) -> list[dict[str, Any]]:
    return [data for name, data in inbox.events if name == "item.updated"]


async def test_subscribers_get_item_updated_after_a_reaction(
    client: Any, connect_socket: SocketFactory
) -> None:
    alice, bob, carol, dave = [await signup(client) for _ in range(4)]
    post = await create(client, alice)
    await react(client, alice, post["id"], "wow")
    inboxes = []
    for account in (bob, carol):
        sio = await connect_socket(account.access_token)
        inboxes.append(Inbox(sio, *EVENTS))
        ack = await subscribed(sio, post["id"])
        assert ack == {"item_id": post["id"], "subscriptions": 1, "reaction_count": 1,
                       "reactions": {"wow": 1}, "share_count": 0, "reply_count": 0,
                       "quote_count": 0}
    answer = await react(client, dave, post["id"], "love")
    for inbox in inboxes:
        await inbox.wait_for(is_event("item.updated", item_id=post["id"], reaction_count=2))
        [event] = updates(inbox)
        assert event == {"item_id": post["id"], "reaction_count": 2,
                         "reactions": {"wow": 1, "love": 1}, "version": answer["version"]}
    await ok(await rest(client, dave, "item.share", {"item_id": post["id"]}))
    for inbox in inboxes:
        await inbox.wait_for(is_event("item.updated", item_id=post["id"], share_count=1))


async def test_subscribe_rules_and_limit(client: Any, connect_socket: SocketFactory) -> None:
    alice, bob = await signup(client), await signup(client)
    sio = await connect_socket(bob.access_token)
    assert command_registry().get("item.subscribe").method is None  # type: ignore[union-attr]
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "item_id"), ({"item_id": "nope"}, "item_id"), ({"item_id": str(uuid.uuid4()), "x": 1}, "x")]
    for payload, field in cases:
        reply = await call(sio, "item.subscribe", payload)
        assert reply["error"]["code"] == "invalid_input", reply
        assert field in {f["field"] for f in reply["error"]["details"]["fields"]}
    private = await create(client, alice, visibility="private")
    for item_id in (private["id"], str(uuid.uuid4())):
        reply = await call(sio, "item.subscribe", {"item_id": item_id})
        assert reply["error"]["code"] == "not_found", reply
    posts = [await create(client, alice, body=f"p{i}") for i in range(51)]
    for count, post in enumerate(posts[:50], start=1):
        assert (await subscribed(sio, post["id"]))["subscriptions"] == count
    assert (await subscribed(sio, posts[0]["id"]))["subscriptions"] == 50  # already: no change
    reply = await call(sio, "item.subscribe", {"item_id": posts[50]["id"]})
    assert reply["error"]["code"] == "invalid_input"
    assert reply["error"]["details"]["limit"] == 50
    assert reply["error"]["details"]["fields"][0]["type"] == "too_many_subscriptions"
    # Another connection has its own 50.
    other = await connect_socket(bob.access_token)
    assert (await subscribed(other, posts[50]["id"]))["subscriptions"] == 1
    reply = await call(sio, "item.unsubscribe", {"item_id": posts[0]["id"]})
    assert reply["data"] == {"item_id": posts[0]["id"], "subscriptions": 49}
    assert (await subscribed(sio, posts[50]["id"]))["subscriptions"] == 50
    reply = await call(sio, "item.unsubscribe", {"item_id": "nope"})
    assert reply["error"]["code"] == "invalid_input"


async def test_subscribes_are_rate_limited(client: Any, connect_socket: SocketFactory) -> None:
    alice = await signup(client)
    post = await create(client, alice)
    sio = await connect_socket(alice.access_token)
    for _ in range(300):  # every call counts, repeats too
        await subscribed(sio, post["id"])
    reply = await call(sio, "item.subscribe", {"item_id": post["id"]})
    assert reply["error"]["code"] == "rate_limited" and reply["error"]["details"]["retry_after"] >= 1
    # Unsubscribing is not limited.
    assert (await call(sio, "item.unsubscribe", {"item_id": post["id"]}))["ok"] is True


async def test_rapid_reactions_are_coalesced(client: Any, connect_socket: SocketFactory) -> None:
    alice = await signup(client)
    users = [await signup(client) for _ in range(25)]
    post = await create(client, alice)
    sio = await connect_socket(alice.access_token)
    got: list[dict[str, Any]] = []
    sio.on("item.updated", got.append)
    await subscribed(sio, post["id"])

    async def twice(account: Any) -> None:
        await react(client, account, post["id"], "like")
        await react(client, account, post["id"], "love")

    started = time.monotonic()
    await asyncio.gather(*(twice(u) for u in users))  # 50 reaction changes
    async with asyncio.timeout(10):
        while not got or got[-1].get("reactions") != {"love": 25}:
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.8)  # anything still due has been flushed by now
    elapsed = time.monotonic() - started
    assert got[-1]["reactions"] == {"love": 25} and got[-1]["reaction_count"] == 25
    # Coalesced: fewer emits than changes, and at most one flush per 0.25 s interval over
    # however long the changes took (a slow machine stretches both, so this cannot flake).
    assert len(got) < 50, len(got)
    assert len(got) <= elapsed / 0.25 + 2, (len(got), elapsed)
    versions = [e["version"] for e in got]
    assert versions == sorted(versions)


async def test_comment_batches_lose_nothing(client: Any, connect_socket: SocketFactory) -> None:
    alice, bob = await signup(client), await signup(client)
    post = await create(client, alice)
    sio = await connect_socket(bob.access_token)
    inbox = Inbox(sio, *EVENTS)
    await subscribed(sio, post["id"])
    live = services_of(client).item_live
    item_id = uuid.UUID(post["id"])
    for i in range(30):
        await live.publish(item_id, "comment.new", {"id": f"c{i}", "author_id": alice.id})

    def received() -> list[str]:
        return [c["id"] for name, data in inbox.events if name == "comment.new"
                for c in data["comments"]]

    async with asyncio.timeout(10):
        while len(received()) < 30:
            await asyncio.sleep(0.05)
    assert received() == [f"c{i}" for i in range(30)]
    batches = [data for name, data in inbox.events if name == "comment.new"]
    assert len(batches) <= 5 and all(b["item_id"] == post["id"] for b in batches)


async def test_the_first_event_after_a_quiet_period_goes_out_at_once(
    client: Any, connect_socket: SocketFactory
) -> None:
    alice = await signup(client)
    post = await create(client, alice)
    sio = await connect_socket(alice.access_token)
    inbox = Inbox(sio, *EVENTS, "item.deleted")
    await subscribed(sio, post["id"])
    live = services_of(client).item_live
    live.interval_s = 2.0  # long enough to tell "at once" from "at the window's end"
    item_id = uuid.UUID(post["id"])
    started = time.monotonic()
    await live.publish(item_id, "item.updated", {"share_count": 1, "version": 1})
    await inbox.wait_for(is_event("item.updated", share_count=1), timeout=1.0)
    assert time.monotonic() - started < 1.0
    await live.publish(item_id, "item.updated", {"share_count": 2, "version": 2})
    await live.publish(item_id, "item.updated", {"share_count": 3, "version": 3})
    await live.publish(item_id, "item.updated", {"share_count": 0, "version": 0})  # stale
    await asyncio.sleep(0.8)
    assert len(updates(inbox)) == 1  # held until the window ends
    await inbox.wait_for(is_event("item.updated", share_count=3), timeout=3.0)
    assert updates(inbox)[1] == {"item_id": post["id"], "share_count": 3, "version": 3}
    # Other events are not held back, and keep their order after what is pending.
    await live.publish(item_id, "item.updated", {"share_count": 4, "version": 4})
    await live.publish(item_id, "item.deleted", {"item_id": post["id"]})
    index = await inbox.wait_for(is_event("item.deleted"), timeout=1.0)
    assert inbox.events[index - 1] == ("item.updated", {"item_id": post["id"], "share_count": 4,
                                                        "version": 4})


async def test_a_real_comment_reaches_subscribers(client: Any, connect_socket: SocketFactory) -> None:
    alice, bob, carol = await signup(client), await signup(client), await signup(client)
    post = await create(client, alice)
    sio = await connect_socket(bob.access_token)
    inbox = Inbox(sio, *EVENTS)
    await subscribed(sio, post["id"])
    comment = await create(client, carol, "comment", "first!", parent_id=post["id"])
    index = await inbox.wait_for(is_event("comment.new", item_id=post["id"]))
    [got] = inbox.events[index][1]["comments"]
    assert got["id"] == comment["id"] and got["body"] == "first!"
    await inbox.wait_for(is_event("item.updated", item_id=post["id"], reply_count=1))


async def test_unsubscribe_and_disconnect_stop_delivery(
    client: Any, connect_socket: SocketFactory
) -> None:
    alice, bob, carol = await signup(client), await signup(client), await signup(client)
    post = await create(client, alice)
    live = services_of(client).item_live
    watcher = await connect_socket(alice.access_token)
    control = Inbox(watcher, *EVENTS)
    await subscribed(watcher, post["id"])
    leaving = await connect_socket(bob.access_token)
    left = Inbox(leaving, *EVENTS)
    await subscribed(leaving, post["id"])
    closing = await connect_socket(bob.access_token)
    await subscribed(closing, post["id"])
    assert live.subscribed_items == 1
    reply = await call(leaving, "item.unsubscribe", {"item_id": post["id"]})
    assert reply["data"]["subscriptions"] == 0
    closing_sid = closing.get_sid()
    await closing.disconnect()
    async with asyncio.timeout(5):
        while live.subscriptions(str(closing_sid)):
            await asyncio.sleep(0.02)
    await react(client, carol, post["id"])
    await control.wait_for(is_event("item.updated", reaction_count=1))
    await asyncio.sleep(0.5)
    assert left.events == []
    await watcher.disconnect()
    async with asyncio.timeout(5):
        while live.subscribed_items:
            await asyncio.sleep(0.02)


async def test_blocks_cut_delivery(client: Any, connect_socket: SocketFactory) -> None:
    alice, bob, carol, dave = [await signup(client) for _ in range(4)]
    post = await create(client, alice)
    socks = {}
    inboxes = {}
    for name, account in (("bob", bob), ("dave", dave)):
        socks[name] = await connect_socket(account.access_token)
        inboxes[name] = Inbox(socks[name], *EVENTS)
        await subscribed(socks[name], post["id"])
    # Comments by someone bob blocks are left out of bob's batch only.
    await block(client, bob, carol)
    hidden = await create(client, carol, "comment", "you can't see me", parent_id=post["id"])
    shown = await create(client, dave, "comment", "hello all", parent_id=post["id"])

    def comment_ids(name: str) -> list[str]:
        return [c["id"] for n, d in inboxes[name].events if n == "comment.new" for c in d["comments"]]

    async with asyncio.timeout(10):
        while len(comment_ids("dave")) < 2 or shown["id"] not in comment_ids("bob"):
            await asyncio.sleep(0.05)
    assert hidden["id"] not in comment_ids("bob")
    # Once the author blocks bob, bob's socket is cut off at the next flush.
    await block(client, alice, bob)
    await react(client, dave, post["id"])
    await inboxes["dave"].wait_for(is_event("item.updated", reaction_count=1))
    live = services_of(client).item_live
    async with asyncio.timeout(5):
        while live.subscriptions(str(socks["bob"].get_sid())):
            await asyncio.sleep(0.02)
    assert not [e for e in updates(inboxes["bob"]) if e.get("reaction_count") == 1]
    reply = await call(socks["bob"], "item.subscribe", {"item_id": post["id"]})
    assert reply["error"]["code"] == "not_found"


async def test_losing_sight_of_an_item_ends_its_updates(
    client: Any, connect_socket: SocketFactory
) -> None:
    """Not only blocks: an unfollow or a narrowed audience cuts a subscriber off at the next flush."""
    alice, bob, carol = [await signup(client) for _ in range(3)]
    await ok(await rest(client, bob, "user.follow", {"user_id": alice.id}))
    await ok(await rest(client, carol, "user.follow", {"user_id": alice.id}))
    post = await create(client, alice, visibility="followers")
    socks = {name: await connect_socket(who.access_token) for name, who in (("bob", bob),
                                                                            ("carol", carol))}
    inboxes = {name: Inbox(sock, *EVENTS) for name, sock in socks.items()}
    for sock in socks.values():
        await subscribed(sock, post["id"])
    live = services_of(client).item_live
    # bob unfollows: the followers-only post is no longer his to watch.
    await ok(await rest(client, bob, "user.unfollow", {"user_id": alice.id}), 204)
    await react(client, carol, post["id"])
    await inboxes["carol"].wait_for(is_event("item.updated", reaction_count=1))
    async with asyncio.timeout(5):
        while live.subscriptions(str(socks["bob"].get_sid())):
            await asyncio.sleep(0.02)
    assert not [e for e in updates(inboxes["bob"]) if e.get("reaction_count") == 1]
    # The author narrows the audience to private: carol is cut off too.
    await ok(await rest(client, alice, "item.edit", {"item_id": post["id"], "visibility": "private"}))
    async with asyncio.timeout(5):
        while live.subscriptions(str(socks["carol"].get_sid())):
            await asyncio.sleep(0.02)
    reply = await call(socks["carol"], "item.subscribe", {"item_id": post["id"]})
    assert reply["error"]["code"] == "not_found"


async def test_a_subscriber_on_another_node_gets_updates(
    make_client: AppFactory, connect_socket: SocketFactory, settings: Settings
) -> None:
    node_a = await make_client(node_id="node-a", database_pool_max=10)
    node_b = await make_client(node_id="node-b", database_pool_max=10)
    alice, bob = await signup(node_a), await signup(node_a)
    post = await create(node_a, alice)
    channel = f"{settings.namespace}:bus:item:{post['id']}"
    assert settings.redis_url is not None
    redis = aioredis.from_url(settings.redis_url)

    async def listeners() -> int:
        return int((await redis.pubsub_numsub(channel))[0][1])

    try:
        assert await listeners() == 0
        on_a = await connect_socket(alice.access_token, target=node_a)
        assert await listeners() == 0  # a socket alone subscribes to nothing
        on_b = await connect_socket(bob.access_token, target=node_b)
        inbox = Inbox(on_b, *EVENTS)
        await subscribed(on_b, post["id"])
        assert await listeners() == 1
        second = await connect_socket(bob.access_token, target=node_b)
        await subscribed(second, post["id"])
        assert await listeners() == 1  # one per node, not per socket
        await react(node_a, alice, post["id"], "haha")
        await inbox.wait_for(is_event("item.updated", reaction_count=1, reactions={"haha": 1}))
        await call(on_b, "item.unsubscribe", {"item_id": post["id"]})
        assert await listeners() == 1
        await second.disconnect()
        async with asyncio.timeout(5):
            while await listeners() != 0:
                await asyncio.sleep(0.02)
        await on_a.disconnect()
    finally:
        await redis.aclose()
