"""Presence: online while any device is connected on any node; transitions announced once."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from channels.bus import InProcessBus, RedisBus
from channels.events import PresenceChanged
from channels.presence_redis import RedisPresenceStore
from channels.presence_store import MemoryPresenceStore, TooManySockets
from config import Settings
from server.resources import SERVICES
from storage.db import Database
from tests.conftest import REDIS_URL, Account, AppFactory, SocketFactory, signup

TIMEOUT = 5.0


@pytest.fixture
async def redis_ns(namespaces: list[str]) -> AsyncIterator[tuple[aioredis.Redis, str]]:
    namespace = f"t{secrets.token_hex(5)}"
    namespaces.append(namespace)
    client = aioredis.from_url(REDIS_URL)
    yield client, namespace
    await client.aclose()


async def until(check: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


class Events:
    """Everything one socket received of one event name, in order."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def __call__(self, data: dict[str, Any]) -> None:
        self.items.append(data)

    async def wait(self, count: int, timeout: float = TIMEOUT) -> None:
        await until(lambda: len(self.items) >= count, timeout)


async def listen(bus: RedisBus | InProcessBus, user_id: uuid.UUID) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []

    async def on(message: dict[str, Any]) -> None:
        got.append(message)

    await bus.subscribe(f"presence:{user_id}", on)
    return got


async def barrier(bus: RedisBus, user_id: uuid.UUID, got: list[dict[str, Any]]) -> None:
    """Publish a marker on the user's presence topic and wait for it to come back.

    The stores announce inside their Redis scripts, before the call returns, and one
    channel delivers in order: once the marker is in, everything announced before it is
    in too, so `got` is complete. The marker is taken out again.
    """
    await bus.publish(f"presence:{user_id}", {"kind": "barrier"})
    await until(lambda: any(m.get("kind") == "barrier" for m in got))
    got[:] = [m for m in got if m.get("kind") != "barrier"]


async def follow(client: Any, follower: Account, *followees: Account) -> None:
    """Followers see presence (docs/conversations.md); strangers read offline, get no events."""
    for followee in followees:
        resp = await client.put(f"/v1/users/me/following/{followee.id}", headers=follower.headers)
        assert resp.status == 200, await resp.text()


# Store level: counts, transitions, crashes -----------------------------------------------


async def test_redis_store_announces_first_and_last_device_across_nodes_only(
    redis_ns: tuple[aioredis.Redis, str],
) -> None:
    client, ns = redis_ns
    bus = RedisBus(client, ns, "watcher")
    await bus.start()
    a = RedisPresenceStore(client, ns, "a")
    b = RedisPresenceStore(client, ns, "b")
    await a.start()
    await b.start()
    try:
        user = uuid.uuid4()
        got = await listen(bus, user)
        await a.connect(user, None)
        await b.connect(user, None)
        await b.connect(user, None)
        assert [c.sockets for c in await a.counts([user, uuid.uuid4()])] == [3, 0]
        await a.disconnect(user)
        await b.disconnect(user)
        assert (await b.counts([user]))[0].sockets == 1
        await b.disconnect(user)
        await barrier(bus, user, got)
        assert [m["status"] for m in got] == ["online", "offline"]
        assert [m["node"] for m in got] == ["a", "b"]
        for message in got:
            PresenceChanged.model_validate({k: message[k] for k in ("user_id", "status",
                                                                      "last_seen")}, strict=True)
        count = (await a.counts([user]))[0]
        assert count.sockets == 0 and count.last_seen_ms is not None
    finally:
        await a.stop()
        await b.stop()
        await bus.close()


async def test_redis_store_socket_limit_counts_every_node(
    redis_ns: tuple[aioredis.Redis, str],
) -> None:
    client, ns = redis_ns
    a = RedisPresenceStore(client, ns, "a")
    b = RedisPresenceStore(client, ns, "b")
    await a.start()
    await b.start()
    try:
        user = uuid.uuid4()
        await a.connect(user, 2)
        await b.connect(user, 2)
        with pytest.raises(TooManySockets) as refused:
            await a.connect(user, 2)
        assert refused.value.limit == 2
        assert (await a.counts([user]))[0].sockets == 2  # the refusal counted nothing
        await b.disconnect(user)
        await a.connect(user, 2)
    finally:
        await a.stop()
        await b.stop()


async def test_a_crashed_nodes_users_go_offline_when_its_heartbeat_expires(
    redis_ns: tuple[aioredis.Redis, str],
) -> None:
    client, ns = redis_ns
    bus = RedisBus(client, ns, "watcher")
    await bus.start()
    live = RedisPresenceStore(client, ns, "live", heartbeat_s=0.1, ttl_s=1.0)
    await live.start()
    # "dead" beats once and never again: a crash, with its counts still in Redis.
    dead = RedisPresenceStore(client, ns, "dead", ttl_s=0.5)
    await dead.heartbeat()
    try:
        only_dead, both = uuid.uuid4(), uuid.uuid4()
        got_dead, got_both = await listen(bus, only_dead), await listen(bus, both)
        await dead.connect(only_dead, None)
        await dead.connect(both, None)
        await live.connect(both, None)
        await until(lambda: len(got_dead) == 1 and len(got_both) == 1)
        await until(lambda: len(got_dead) == 2)
        assert got_dead[1]["status"] == "offline"
        assert got_dead[1]["node"] == "live"  # the reaper announced it
        assert got_dead[1]["last_seen"] is not None
        assert [c.sockets for c in await live.counts([only_dead, both])] == [0, 1]
        # The reap that announced only_dead ran in one script, which would have announced
        # `both` too; and it deleted the dead node's counts, so no later reap can.
        await barrier(bus, both, got_both)
        assert [m["status"] for m in got_both] == ["online"]  # still on the live node
        assert not await client.exists(f"{ns}:presence:node:dead")
    finally:
        await live.stop()
        await bus.close()


async def test_a_node_whose_heartbeat_lapsed_puts_its_counts_back(
    redis_ns: tuple[aioredis.Redis, str],
) -> None:
    client, ns = redis_ns
    bus = RedisBus(client, ns, "watcher")
    await bus.start()
    stalled = RedisPresenceStore(client, ns, "stalled", heartbeat_s=3600)
    other = RedisPresenceStore(client, ns, "other", heartbeat_s=3600)
    await stalled.start()
    await other.start()
    try:
        user = uuid.uuid4()
        got = await listen(bus, user)
        await stalled.connect(user, None)
        # A stall longer than the TTL: the heartbeat key expires, another node reaps it.
        await client.delete(f"{ns}:presence:alive:stalled")
        await other.heartbeat()
        await until(lambda: len(got) == 2)
        assert (await other.counts([user]))[0].sockets == 0
        await stalled.heartbeat()
        await until(lambda: len(got) == 3)
        assert [m["status"] for m in got] == ["online", "offline", "online"]
        assert (await other.counts([user]))[0].sockets == 1
        await stalled.disconnect(user)
        await until(lambda: len(got) == 4)
        assert got[3]["status"] == "offline"
    finally:
        await stalled.stop()
        await other.stop()
        await bus.close()


async def test_memory_store_counts_and_announces_in_process() -> None:
    bus = InProcessBus("solo")
    store = MemoryPresenceStore(bus)
    user = uuid.uuid4()
    got = await listen(bus, user)
    await store.connect(user, 2)
    await store.connect(user, 2)
    with pytest.raises(TooManySockets):
        await store.connect(user, 2)
    await store.disconnect(user)
    assert [c.sockets for c in await store.counts([user])] == [1]
    await store.disconnect(user)
    assert [m["status"] for m in got] == ["online", "offline"]
    assert (await store.counts([user]))[0].last_seen_ms is not None


# Through the server: two nodes sharing Redis ---------------------------------------------


async def test_watcher_on_another_node_sees_one_online_and_one_offline(
    make_client: AppFactory, connect_socket: SocketFactory, settings: Settings,
) -> None:
    node_a = await make_client(node_id="a")
    node_b = await make_client(node_id="b")
    watcher, user = await signup(node_a), await signup(node_a)
    await follow(node_a, watcher, user)
    watcher_sio = await connect_socket(watcher.access_token, target=node_b)
    events = Events()
    watcher_sio.on("presence", events)
    ack = await watcher_sio.call("presence.subscribe", {"user_ids": [user.id]}, timeout=TIMEOUT)
    assert ack["ok"] is True, ack
    assert ack["data"]["watching"] == 1
    assert ack["data"]["presence"] == [{"user_id": user.id, "status": "offline",
                                        "last_seen": None}]

    phone = await connect_socket(user.access_token, target=node_a)
    await events.wait(1)
    laptop = await connect_socket(user.access_token, target=node_b)
    query = await watcher_sio.call("presence.query", {"user_ids": [user.id]}, timeout=TIMEOUT)
    assert query["data"]["presence"][0]["status"] == "online"
    await phone.disconnect()
    # Node a has counted the phone out (its script announces, if at all, as it counts):
    # still online on node b. That no event was sent shows in the exact list at the end.
    redis = aioredis.from_url(REDIS_URL)
    try:
        node_a_counts = f"{settings.namespace}:presence:node:a"
        async with asyncio.timeout(TIMEOUT):
            while await redis.hexists(node_a_counts, user.id):
                await asyncio.sleep(0.02)
    finally:
        await redis.aclose()
    query = await watcher_sio.call("presence.query", {"user_ids": [user.id]}, timeout=TIMEOUT)
    assert query["data"]["presence"][0]["status"] == "online"
    await laptop.disconnect()
    await events.wait(2)
    assert [e["status"] for e in events.items] == ["online", "offline"]
    for event in events.items:
        PresenceChanged.model_validate(event, strict=True)  # what events.json promises
        assert event["user_id"] == user.id
    offline = events.items[1]
    assert offline["last_seen"] is not None

    query = await watcher_sio.call("presence.query", {"user_ids": [user.id]}, timeout=TIMEOUT)
    assert query["data"]["presence"] == [offline]
    db = await Database.connect(settings.database_url or "", 1, 1)
    try:
        async with asyncio.timeout(TIMEOUT):
            while True:
                seen = await db.pool.fetchval("SELECT last_seen_at FROM users WHERE id = $1",
                                              uuid.UUID(user.id))
                if seen is not None and seen.isoformat() == offline["last_seen"]:
                    break
                await asyncio.sleep(0.05)
    finally:
        await db.close()
    # Barrier: coming back online is announced on the same path after anything the two
    # disconnects announced, so an extra event would show before it.
    await connect_socket(user.access_token, target=node_a)
    await events.wait(3)
    assert [e["status"] for e in events.items] == ["online", "offline", "online"]


async def test_subscriptions_are_undone_when_the_socket_disconnects(
    make_client: AppFactory, connect_socket: SocketFactory, settings: Settings,
) -> None:
    node = await make_client(node_id="a")
    presence = node.app[SERVICES].presence
    watcher, user = await signup(node), await signup(node)
    await follow(node, watcher, user)
    redis = aioredis.from_url(REDIS_URL)
    channel = f"{settings.namespace}:bus:presence:{user.id}"
    # Where re-checks of what the watcher may see arrive (channels/presence.py).
    viewing = f"{settings.namespace}:bus:presence-viewer:{watcher.id}"
    try:
        sio = await connect_socket(watcher.access_token, target=node)
        ack = await sio.call("presence.subscribe", {"user_ids": [user.id]}, timeout=TIMEOUT)
        assert ack["ok"] is True, ack
        assert presence.watched_users == 1
        numsub = dict(await redis.pubsub_numsub(channel, viewing))
        assert numsub[channel.encode()] == 1 and numsub[viewing.encode()] == 1
        await sio.disconnect()
        await until(lambda: presence.watched_users == 0)
        numsub = dict(await redis.pubsub_numsub(channel, viewing))
        assert numsub[channel.encode()] == 0 and numsub[viewing.encode()] == 0
    finally:
        await redis.aclose()


async def test_a_block_on_one_node_stops_the_events_of_a_watcher_on_another(
    make_client: AppFactory, connect_socket: SocketFactory,
) -> None:
    node_a = await make_client(node_id="a")
    node_b = await make_client(node_id="b")
    watcher, user, pal = await signup(node_a), await signup(node_a), await signup(node_a)
    await follow(node_a, watcher, user, pal)
    sio = await connect_socket(watcher.access_token, target=node_b)
    events = Events()
    sio.on("presence", events)
    ack = await sio.call("presence.subscribe", {"user_ids": [user.id, pal.id]}, timeout=TIMEOUT)
    assert ack["data"]["watching"] == 2
    device = await connect_socket(user.access_token, target=node_a)
    await events.wait(1)
    resp = await node_a.put(f"/v1/users/me/blocks/{watcher.id}", headers=user.headers)
    assert resp.status == 204, await resp.text()
    # Node b re-checks its watches of the user and sends the one last word.
    await events.wait(2)
    assert events.items[1] == {"user_id": user.id, "status": "offline", "last_seen": None}
    await device.disconnect()
    async with asyncio.timeout(TIMEOUT):  # the user's own view: counted out, announced
        while (await (await node_a.get("/v1/presence", params={"user_ids": user.id},
                                       headers=user.headers)).json()
               )["presence"][0]["status"] != "offline":
            await asyncio.sleep(0.02)
    # Barrier: the pal's online is announced after the user's offline, on the same path.
    await connect_socket(pal.access_token, target=node_a)
    await events.wait(3)
    assert [(e["user_id"], e["status"]) for e in events.items] == [
        (user.id, "online"), (user.id, "offline"), (pal.id, "online")]


async def test_unsubscribe_stops_the_events(
    make_client: AppFactory, connect_socket: SocketFactory,
) -> None:
    node = await make_client(node_id="a")
    watcher, user, other = await signup(node), await signup(node), await signup(node)
    await follow(node, watcher, user, other)
    sio = await connect_socket(watcher.access_token, target=node)
    events = Events()
    sio.on("presence", events)
    ack = await sio.call("presence.subscribe", {"user_ids": [user.id, other.id]}, timeout=TIMEOUT)
    assert ack["data"]["watching"] == 2
    ack = await sio.call("presence.unsubscribe", {"user_ids": [user.id]}, timeout=TIMEOUT)
    assert ack == {"ok": True, "data": {"watching": 1}}
    assert node.app[SERVICES].presence.watched_users == 1
    await connect_socket(user.access_token, target=node)
    # Barrier: `user` was announced (in the store's script) before `other` connected, and
    # the node reads both topics from one Redis connection, in order.
    await connect_socket(other.access_token, target=node)
    await events.wait(1)
    assert [e["user_id"] for e in events.items] == [other.id]


async def test_presence_without_redis_works_in_process(
    make_client: AppFactory, connect_socket: SocketFactory,
) -> None:
    node = await make_client(redis_url=None)
    watcher, user = await signup(node), await signup(node)
    await follow(node, watcher, user)
    sio = await connect_socket(watcher.access_token, target=node)
    events = Events()
    sio.on("presence", events)
    ack = await sio.call("presence.subscribe", {"user_ids": [user.id]}, timeout=TIMEOUT)
    assert ack["data"]["presence"][0]["status"] == "offline"
    device = await connect_socket(user.access_token, target=node)
    await events.wait(1)
    await device.disconnect()
    await events.wait(2)
    assert [e["status"] for e in events.items] == ["online", "offline"]
