"""typing.* and presence.* commands, and the per-user socket limit, over two nodes."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
import socketio

from channels.events import Typing
from config import RateSpec, Settings
from tests.conftest import AppFactory, SocketFactory, signup
from tests.handlers.conversation_helpers import make_group

TIMEOUT = 5.0


class Events:
    """Everything one socket received of one event name, with arrival times."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.times: list[float] = []

    def __call__(self, data: dict[str, Any]) -> None:
        self.items.append(data)
        self.times.append(time.monotonic())

    async def wait(self, count: int, timeout: float = TIMEOUT) -> None:
        async with asyncio.timeout(timeout):
            while len(self.items) < count:
                await asyncio.sleep(0.02)


def limits(settings: Settings, **changes: Any) -> Any:
    return settings.limits.model_copy(update=changes)


async def test_typing_reaches_the_member_on_another_node_and_expires(
    make_client: AppFactory, connect_socket: SocketFactory, settings: Settings,
) -> None:
    ttl = 1.0
    node_a = await make_client(node_id="a", limits=limits(settings, typing_ttl_s=ttl))
    node_b = await make_client(node_id="b", limits=limits(settings, typing_ttl_s=ttl))
    alice, bob = await signup(node_a), await signup(node_a)
    conversation_id = await make_group(settings, alice, bob)
    alice_sio = await connect_socket(alice.access_token, target=node_a)
    bob_sio = await connect_socket(bob.access_token, target=node_b)
    typing = Events()
    bob_sio.on("typing", typing)

    ack = await alice_sio.call("typing.start", {"conversation_id": conversation_id},
                               timeout=TIMEOUT)
    assert ack == {"ok": True, "data": {"conversation_id": conversation_id, "active": True,
                                        "relayed": True, "expires_in_s": ttl}}
    await typing.wait(1)
    assert typing.items[0] == {"conversation_id": conversation_id, "user_id": alice.id,
                               "active": True}
    Typing.model_validate(typing.items[0], strict=True)  # what events.json promises

    # A refresh before the expiry keeps it going and is not relayed again.
    await asyncio.sleep(ttl / 2)
    refreshed_at = time.monotonic()
    ack = await alice_sio.call("typing.start", {"conversation_id": conversation_id},
                               timeout=TIMEOUT)
    assert ack["ok"] is True
    await typing.wait(2, timeout=ttl + TIMEOUT)
    assert [e["active"] for e in typing.items] == [True, False]
    assert typing.items[1] == {"conversation_id": conversation_id, "user_id": alice.id,
                               "active": False}
    # The server ends it one TTL after the last refresh, not after the first start.
    assert typing.times[1] - refreshed_at >= ttl * 0.9
    # Barrier: a new start goes out on the same path after anything the expiry sent.
    await alice_sio.call("typing.start", {"conversation_id": conversation_id}, timeout=TIMEOUT)
    await typing.wait(3)
    assert [e["active"] for e in typing.items] == [True, False, True]


async def test_typing_stop_is_relayed_once(
    make_client: AppFactory, connect_socket: SocketFactory, settings: Settings,
) -> None:
    node_a = await make_client(node_id="a")
    node_b = await make_client(node_id="b")
    alice, bob = await signup(node_a), await signup(node_a)
    conversation_id = await make_group(settings, alice, bob)
    alice_sio = await connect_socket(alice.access_token, target=node_a)
    bob_sio = await connect_socket(bob.access_token, target=node_b)
    typing = Events()
    bob_sio.on("typing", typing)
    await alice_sio.call("typing.start", {"conversation_id": conversation_id}, timeout=TIMEOUT)
    await typing.wait(1)
    # Stopped over REST, on the other node: the state is shared through Redis.
    resp = await node_b.delete(f"/v1/conversations/{conversation_id}/typing",
                               headers=alice.headers)
    assert resp.status == 200
    assert (await resp.json())["relayed"] is True
    await typing.wait(2)
    again = await alice_sio.call("typing.stop", {"conversation_id": conversation_id},
                                 timeout=TIMEOUT)
    assert again["data"]["relayed"] is False
    # Barrier: a stop relays before it answers, so a new start's event comes after it.
    await alice_sio.call("typing.start", {"conversation_id": conversation_id}, timeout=TIMEOUT)
    await typing.wait(3)
    assert [e["active"] for e in typing.items] == [True, False, True]


async def test_typing_over_rest_is_relayed(
    make_client: AppFactory, connect_socket: SocketFactory, settings: Settings,
) -> None:
    node = await make_client(node_id="a")
    alice, bob = await signup(node), await signup(node)
    conversation_id = await make_group(settings, alice, bob)
    bob_sio = await connect_socket(bob.access_token, target=node)
    typing = Events()
    bob_sio.on("typing", typing)
    resp = await node.post(f"/v1/conversations/{conversation_id}/typing", headers=alice.headers)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["relayed"] is True
    await typing.wait(1)
    assert typing.items[0]["user_id"] == alice.id and typing.items[0]["active"] is True


async def test_typing_is_not_relayed_in_groups_over_the_limit(
    make_client: AppFactory, connect_socket: SocketFactory, settings: Settings,
) -> None:
    node = await make_client(limits=limits(settings, typing_relay_max_members=2))
    alice, bob, carol = await signup(node), await signup(node), await signup(node)
    big = await make_group(settings, alice, bob, carol)
    small = await make_group(settings, alice, bob)
    alice_sio = await connect_socket(alice.access_token, target=node)
    bob_sio = await connect_socket(bob.access_token, target=node)
    typing = Events()
    bob_sio.on("typing", typing)

    ack = await alice_sio.call("typing.start", {"conversation_id": big}, timeout=TIMEOUT)
    assert ack == {"ok": True, "data": {"conversation_id": big, "active": True,
                                        "relayed": False, "expires_in_s": None}}
    # The small group's signal follows on the same path: once it is in, the other would be.
    ack = await alice_sio.call("typing.start", {"conversation_id": small}, timeout=TIMEOUT)
    assert ack["data"]["relayed"] is True
    await typing.wait(1)
    assert [e["conversation_id"] for e in typing.items] == [small]


async def test_typing_is_rate_limited_per_user(
    make_client: AppFactory, connect_socket: SocketFactory, settings: Settings,
) -> None:
    node = await make_client(rates=settings.rates.model_copy(update={"typing": RateSpec(3, 30)}))
    alice, bob = await signup(node), await signup(node)
    conversation_id = await make_group(settings, alice, bob)
    other = await make_group(settings, alice, bob)
    sio = await connect_socket(alice.access_token, target=node)
    for target in (conversation_id, other, conversation_id):
        ack = await sio.call("typing.start", {"conversation_id": target}, timeout=TIMEOUT)
        assert ack["ok"] is True, ack
    ack = await sio.call("typing.start", {"conversation_id": other}, timeout=TIMEOUT)
    assert ack["ok"] is False
    assert ack["error"]["code"] == "rate_limited"
    assert 1 <= ack["error"]["details"]["retry_after"] <= 30
    # Stopping is never refused: it relays only what a start put up.
    ack = await sio.call("typing.stop", {"conversation_id": other}, timeout=TIMEOUT)
    assert ack["ok"] is True
    # Bob's budget is his own.
    bob_sio = await connect_socket(bob.access_token, target=node)
    ack = await bob_sio.call("typing.start", {"conversation_id": other}, timeout=TIMEOUT)
    assert ack["ok"] is True


async def test_typing_by_a_non_member_is_not_found(
    make_client: AppFactory, connect_socket: SocketFactory, settings: Settings,
) -> None:
    node = await make_client()
    alice, bob, mallory = await signup(node), await signup(node), await signup(node)
    conversation_id = await make_group(settings, alice, bob)
    bob_sio = await connect_socket(bob.access_token, target=node)
    typing = Events()
    bob_sio.on("typing", typing)
    sio = await connect_socket(mallory.access_token, target=node)
    for name in ("typing.start", "typing.stop"):
        for target in (conversation_id, str(uuid.uuid4())):
            ack = await sio.call(name, {"conversation_id": target}, timeout=TIMEOUT)
            assert ack["ok"] is False and ack["error"]["code"] == "not_found", (name, ack)
        for bad in ({}, {"conversation_id": "nope"}, {"conversation_id": conversation_id, "x": 1}):
            ack = await sio.call(name, bad, timeout=TIMEOUT)
            assert ack["error"]["code"] == "invalid_input", (name, bad, ack)
    resp = await node.post(f"/v1/conversations/{conversation_id}/typing", headers=mallory.headers)
    assert resp.status == 404
    # Barrier: a member's start goes out on the same path after anything those could have.
    resp = await node.post(f"/v1/conversations/{conversation_id}/typing", headers=alice.headers)
    assert resp.status == 200
    await typing.wait(1)
    assert [e["user_id"] for e in typing.items] == [alice.id]


async def test_a_disconnecting_socket_stops_its_typing(
    make_client: AppFactory, connect_socket: SocketFactory, settings: Settings,
) -> None:
    # The default 8 s expiry is longer than the wait: the stop comes from the disconnect.
    node_a = await make_client(node_id="a")
    node_b = await make_client(node_id="b")
    alice, bob = await signup(node_a), await signup(node_a)
    conversation_id = await make_group(settings, alice, bob)
    alice_sio = await connect_socket(alice.access_token, target=node_a)
    bob_sio = await connect_socket(bob.access_token, target=node_b)
    typing = Events()
    bob_sio.on("typing", typing)
    await alice_sio.call("typing.start", {"conversation_id": conversation_id}, timeout=TIMEOUT)
    await typing.wait(1)
    await alice_sio.disconnect()
    await typing.wait(2, timeout=4.0)
    assert typing.items[1] == {"conversation_id": conversation_id, "user_id": alice.id,
                               "active": False}


@pytest.mark.parametrize("user_ids", [
    [], "", None, ["not-a-uuid"], "x", [1],
    ["00000000-0000-0000-0000-000000000001"] * 2,
    [str(uuid.uuid4()) for _ in range(201)],
])
async def test_presence_commands_refuse_bad_user_ids(
    make_client: AppFactory, connect_socket: SocketFactory, user_ids: Any,
) -> None:
    node = await make_client()
    account = await signup(node)
    sio = await connect_socket(account.access_token, target=node)
    for name in ("presence.subscribe", "presence.unsubscribe", "presence.query"):
        ack = await sio.call(name, {"user_ids": user_ids}, timeout=TIMEOUT)
        assert ack["ok"] is False, (name, ack)
        assert ack["error"]["code"] == "invalid_input", (name, ack)
        assert ack["error"]["details"]["fields"][0]["field"].startswith("user_ids")


async def test_presence_subscribe_takes_200_and_caps_the_total_per_socket(
    make_client: AppFactory, connect_socket: SocketFactory, settings: Settings,
) -> None:
    node = await make_client(limits=limits(settings, presence_subscribe_max=250))
    account = await signup(node)
    sio = await connect_socket(account.access_token, target=node)
    first = [str(uuid.uuid4()) for _ in range(200)]
    ack = await sio.call("presence.subscribe", {"user_ids": first}, timeout=TIMEOUT)
    assert ack["ok"] is True, ack
    assert ack["data"]["watching"] == 200
    assert [p["user_id"] for p in ack["data"]["presence"]] == first
    assert {p["status"] for p in ack["data"]["presence"]} == {"offline"}
    # Watching some again costs nothing; past the total, nothing changes.
    ack = await sio.call("presence.subscribe", {"user_ids": first[:50]}, timeout=TIMEOUT)
    assert ack["data"]["watching"] == 200
    more = [str(uuid.uuid4()) for _ in range(51)]
    ack = await sio.call("presence.subscribe", {"user_ids": more}, timeout=TIMEOUT)
    assert ack["ok"] is False
    assert ack["error"]["code"] == "invalid_input"
    assert ack["error"]["details"]["limit"] == 250
    assert ack["error"]["details"]["watching"] == 200
    ack = await sio.call("presence.subscribe", {"user_ids": more[:50]}, timeout=TIMEOUT)
    assert ack["data"]["watching"] == 250


async def test_presence_needs_authentication_and_subscribe_needs_a_socket(
    make_client: AppFactory, connect_socket: SocketFactory,
) -> None:
    node = await make_client()
    account, other = await signup(node), await signup(node)
    anonymous = await connect_socket(None, target=node)
    for name in ("presence.subscribe", "presence.unsubscribe", "presence.query"):
        ack = await anonymous.call(name, {"user_ids": [other.id]}, timeout=TIMEOUT)
        assert ack["error"]["code"] == "unauthorized", (name, ack)
    resp = await node.get(f"/v1/presence?user_ids={other.id}")
    assert resp.status == 401
    resp = await node.post("/v1/presence/subscribe", headers=account.headers,
                           json={"user_ids": [other.id]})
    assert resp.status == 404


async def test_presence_query_over_rest(
    make_client: AppFactory, connect_socket: SocketFactory,
) -> None:
    node = await make_client()
    account, online, offline = await signup(node), await signup(node), await signup(node)
    for followee in (online, offline):  # followers see presence (test_presence_privacy.py)
        resp = await node.put(f"/v1/users/me/following/{followee.id}", headers=account.headers)
        assert resp.status == 200, await resp.text()
    await connect_socket(online.access_token, target=node)
    # The connect is acknowledged before its presence is recorded: wait until it is.
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        resp = await node.get(f"/v1/presence?user_ids={online.id},{offline.id}",
                              headers=account.headers)
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        if body["presence"][0]["status"] == "online" or \
                asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    assert [(p["user_id"], p["status"]) for p in body["presence"]] == [
        (online.id, "online"), (offline.id, "offline")]
    assert body["presence"][0]["last_seen"] is not None
    resp = await node.get(f"/v1/presence?user_ids={online.id},{online.id}",
                          headers=account.headers)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid_input"


async def refused(url: str, token: str) -> dict[str, Any]:
    """Connect, expecting a refusal; the connect_error data it carried."""
    sio = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []
    sio.on("connect_error", errors.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio.connect(url, auth={"token": token}, transports=["websocket"],
                          wait_timeout=TIMEOUT)
    assert not sio.connected
    assert len(errors) == 1, errors
    data: dict[str, Any] = errors[0]["data"]
    return data


async def test_a_user_holds_at_most_n_sockets_across_nodes(
    make_client: AppFactory, connect_socket: SocketFactory, settings: Settings,
) -> None:
    node_a = await make_client(node_id="a", limits=limits(settings, sockets_per_user=2))
    node_b = await make_client(node_id="b", limits=limits(settings, sockets_per_user=2))
    account, other = await signup(node_a), await signup(node_a)
    first = await connect_socket(account.access_token, target=node_a)
    await connect_socket(account.access_token, target=node_b)
    for node in (node_a, node_b):
        data = await refused(str(node.make_url("/")), account.access_token)
        assert data["code"] == "rate_limited"
        assert data["limit"] == 2
        assert "2" in data["message"]
    # Another user is not affected, and the refusals counted nothing.
    await connect_socket(other.access_token, target=node_a)
    ack = await first.call("presence.query", {"user_ids": [account.id]}, timeout=TIMEOUT)
    assert ack["data"]["presence"][0]["status"] == "online"

    await first.disconnect()
    # The server counts the close once it handles it: retry for a bounded while.
    async with asyncio.timeout(TIMEOUT):
        while True:
            sio = socketio.AsyncClient(reconnection=False)
            try:
                await sio.connect(str(node_a.make_url("/")), auth={"token": account.access_token},
                                  transports=["websocket"], wait_timeout=TIMEOUT)
                break
            except socketio.exceptions.ConnectionError:
                await asyncio.sleep(0.05)
    try:
        assert sio.connected
        data = await refused(str(node_b.make_url("/")), account.access_token)
        assert data["code"] == "rate_limited"
    finally:
        await sio.disconnect()
