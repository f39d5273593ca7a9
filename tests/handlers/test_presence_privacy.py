"""Who sees whose presence: followers, friends and conversation members; never across a block.

Everyone else reads `offline` with `last_seen: null` and gets no events. Losing access (a
block, an unfollow, a follower removal, an unfriend, leaving the last shared conversation)
ends the live events with one `offline, last_seen: null`; gaining it starts them.

Negative checks wait on a barrier: a user the watcher may see comes online after the steps
that must not produce an event; the node handles presence messages in arrival order, so an
event that should not exist would have arrived before the barrier's.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import socketio

from config.rates import Rates
from tests.conftest import Account, AppFactory, SocketFactory, signup
from tests.handlers.conversation_helpers import Inbox, create_group, is_event, ok, rest

Client = Any
TIMEOUT = 5.0
HIDDEN = {"status": "offline", "last_seen": None}


class Watcher:
    """A user's socket that watches presence, and the `presence` events it received."""

    def __init__(self, account: Account, sio: socketio.AsyncClient) -> None:
        self.account = account
        self.sio = sio
        self.inbox = Inbox(sio, "presence")

    async def subscribe(self, *users: Account) -> dict[str, Any]:
        ack: dict[str, Any] = await self.sio.call(
            "presence.subscribe", {"user_ids": [u.id for u in users]}, timeout=TIMEOUT)
        assert ack["ok"], ack
        return ack

    async def query(self, user: Account) -> dict[str, Any]:
        ack = await self.sio.call("presence.query", {"user_ids": [user.id]}, timeout=TIMEOUT)
        assert ack["ok"], ack
        status: dict[str, Any] = ack["data"]["presence"][0]
        return status

    def about(self, user: Account) -> list[dict[str, Any]]:
        """The events received about one user, without its id."""
        return [{"status": d["status"], "last_seen": d["last_seen"]}
                for _, d in self.inbox.events if d["user_id"] == user.id]

    async def wait(self, user: Account, **fields: Any) -> None:
        await self.inbox.wait_for(is_event("presence", user_id=user.id, **fields), TIMEOUT)


async def watcher(client: Client, connect_socket: SocketFactory,
                  account: Account | None = None) -> Watcher:
    account = account or await signup(client)
    return Watcher(account, await connect_socket(account.access_token))


async def barrier(client: Client, connect_socket: SocketFactory, watching: Watcher) -> None:
    """A user the watcher follows comes online; wait for that event (see the module doc)."""
    pal = await signup(client)
    await ok(await rest(client, watching.account, "user.follow", {"user_id": pal.id}))
    await watching.subscribe(pal)
    await connect_socket(pal.access_token)
    await watching.wait(pal, status="online")


async def offline(client: Client, user: Account) -> None:
    """Wait until the server has counted the user's sockets out (they may see themselves)."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            resp = await client.get("/v1/presence", params={"user_ids": user.id},
                                    headers=user.headers)
            if (await ok(resp))["presence"][0]["status"] == "offline":
                return
            await asyncio.sleep(0.02)


async def relate(client: Client, relation: str, viewer: Account, target: Account) -> None:
    """Make `relation` hold from the viewer to the target, through the commands."""
    if relation == "follower":
        await ok(await rest(client, viewer, "user.follow", {"user_id": target.id}))
    elif relation == "requester":
        await ok(await rest(client, target, "account.update", {"is_private": True}))
        follow = await ok(await rest(client, viewer, "user.follow", {"user_id": target.id}))
        assert follow["status"] == "requested"
    elif relation == "followee":
        await ok(await rest(client, target, "user.follow", {"user_id": viewer.id}))
    elif relation == "friend":
        await ok(await rest(client, viewer, "friend_request.send", {"user_id": target.id}))
        await ok(await rest(client, target, "friend_request.accept", {"user_id": viewer.id}))
    elif relation == "group":
        await create_group(client, target, viewer)
    elif relation == "dm":
        await ok(await rest(client, viewer, "conversation.open_direct", {"user_id": target.id}))
    else:
        assert relation == "stranger"


@pytest.mark.parametrize(("relation", "sees"), [
    ("follower", True), ("friend", True), ("group", True), ("dm", True),
    ("stranger", False), ("requester", False), ("followee", False),
])
async def test_who_sees_a_users_presence(
    client: Client, connect_socket: SocketFactory, relation: str, sees: bool,
) -> None:
    target = await signup(client)
    viewer = await watcher(client, connect_socket)
    await relate(client, relation, viewer.account, target)
    device = await connect_socket(target.access_token)
    await device.disconnect()
    await offline(client, target)  # the target now has a last_seen

    ack = await viewer.subscribe(target)
    [status] = ack["data"]["presence"]
    if sees:
        assert status["status"] == "offline" and status["last_seen"] is not None
    else:
        assert status == {"user_id": target.id, **HIDDEN}  # as if never seen
    await connect_socket(target.access_token)
    if sees:
        await viewer.wait(target, status="online")
        assert (await viewer.query(target))["status"] == "online"
    else:
        await barrier(client, connect_socket, viewer)
        assert viewer.about(target) == []
        assert await viewer.query(target) == {"user_id": target.id, **HIDDEN}


async def test_a_subscription_belongs_to_the_socket_that_asked(
    client: Client, connect_socket: SocketFactory
) -> None:
    watched = await signup(client)
    asking = await watcher(client, connect_socket)
    await relate(client, "follower", asking.account, watched)
    other_tab = Watcher(asking.account, await connect_socket(asking.account.access_token))
    ack = await asking.subscribe(watched)
    assert ack["data"]["presence"][0]["status"] == "offline"
    await connect_socket(watched.access_token)
    await asking.wait(watched, status="online")
    await barrier(client, connect_socket, other_tab)
    assert other_tab.about(watched) == []


async def test_a_private_account_shows_presence_once_it_approves_the_follower(
    client: Client, connect_socket: SocketFactory
) -> None:
    target = await signup(client)
    viewer = await watcher(client, connect_socket)
    await relate(client, "requester", viewer.account, target)
    await viewer.subscribe(target)
    await connect_socket(target.access_token)
    assert await viewer.query(target) == {"user_id": target.id, **HIDDEN}
    await ok(await rest(client, target, "follow_request.approve", {"user_id": viewer.account.id}),
             204)
    # The held watch turns live: the current status arrives, then the transitions.
    await viewer.wait(target, status="online")
    assert (await viewer.query(target))["status"] == "online"


@pytest.mark.parametrize("blocker", ["target", "viewer"])
async def test_a_block_stops_live_presence_either_way(
    client: Client, connect_socket: SocketFactory, blocker: str,
) -> None:
    target = await signup(client)
    viewer = await watcher(client, connect_socket)
    # A shared group: a block leaves both in it, so only the block rule can hide presence.
    await relate(client, "group", viewer.account, target)
    await viewer.subscribe(target)
    device = await connect_socket(target.access_token)
    await viewer.wait(target, status="online")

    by, other = (target, viewer.account) if blocker == "target" else (viewer.account, target)
    await ok(await rest(client, by, "user.block", {"user_id": other.id}), 204)
    # One last word: what anyone without access reads.
    await viewer.wait(target, **HIDDEN)
    await device.disconnect()
    await offline(client, target)
    await connect_socket(target.access_token)
    await barrier(client, connect_socket, viewer)
    events = viewer.about(target)
    assert [e["status"] for e in events] == ["online", "offline"] and events[1] == HIDDEN
    assert await viewer.query(target) == {"user_id": target.id, **HIDDEN}
    # A new subscription stays silent too.
    assert (await viewer.subscribe(target))["data"]["presence"] == [{"user_id": target.id,
                                                                     **HIDDEN}]


@pytest.mark.parametrize(("relation", "command", "by"), [
    ("follower", "user.unfollow", "viewer"),
    ("follower", "follower.remove", "target"),
    ("friend", "friend.remove", "target"),
])
async def test_losing_the_relation_stops_live_presence(
    client: Client, connect_socket: SocketFactory, relation: str, command: str, by: str,
) -> None:
    target = await signup(client)
    viewer = await watcher(client, connect_socket)
    await relate(client, relation, viewer.account, target)
    await viewer.subscribe(target)
    device = await connect_socket(target.access_token)
    await viewer.wait(target, status="online")

    actor, other = (viewer.account, target) if by == "viewer" else (target, viewer.account)
    await ok(await rest(client, actor, command, {"user_id": other.id}), 204)
    await viewer.wait(target, **HIDDEN)
    await device.disconnect()
    await barrier(client, connect_socket, viewer)
    assert [e["status"] for e in viewer.about(target)] == ["online", "offline"]
    assert viewer.about(target)[-1] == HIDDEN


async def test_leaving_the_last_shared_conversation_stops_live_presence(
    client: Client, connect_socket: SocketFactory
) -> None:
    target = await signup(client)
    viewer = await watcher(client, connect_socket)
    first = await create_group(client, viewer.account, target, title="first")
    second = await create_group(client, viewer.account, target, title="second")
    await viewer.subscribe(target)

    # Leaving one of two shared groups changes nothing: the events go on.
    await ok(await rest(client, target, "conversation.leave", {"conversation_id": first["id"]}),
             204)
    await connect_socket(target.access_token)
    await viewer.wait(target, status="online")
    assert [e["status"] for e in viewer.about(target)] == ["online"]

    await ok(await rest(client, viewer.account, "conversation.member.remove",
                        {"conversation_id": second["id"], "user_id": target.id}), 204)
    await viewer.wait(target, **HIDDEN)
    await connect_socket(target.access_token)  # a second device: not a transition anyway
    await barrier(client, connect_socket, viewer)
    assert viewer.about(target)[1:] == [HIDDEN]


async def test_presence_of_a_user_who_blocked_you_before_reads_offline(
    client: Client, connect_socket: SocketFactory
) -> None:
    blocker = await signup(client)
    viewer = await watcher(client, connect_socket)
    await relate(client, "group", viewer.account, blocker)
    await ok(await rest(client, blocker, "user.block", {"user_id": viewer.account.id}), 204)
    await connect_socket(blocker.access_token)  # the blocker is online
    ack = await viewer.subscribe(blocker)
    assert ack["data"]["presence"] == [{"user_id": blocker.id, **HIDDEN}]
    assert await viewer.query(blocker) == {"user_id": blocker.id, **HIDDEN}
    resp = await client.get("/v1/presence", params={"user_ids": blocker.id},
                            headers=viewer.account.headers)
    assert (await ok(resp))["presence"] == [{"user_id": blocker.id, **HIDDEN}]
    await connect_socket(blocker.access_token)  # a second device
    await barrier(client, connect_socket, viewer)
    assert viewer.about(blocker) == []


async def test_presence_query_is_rate_limited(make_client: AppFactory) -> None:
    client = await make_client(rates=Rates(presence_query=(2, 60)))
    me, other = await signup(client), await signup(client)
    for _ in range(2):
        await ok(await client.get("/v1/presence", params={"user_ids": other.id},
                                  headers=me.headers))
    resp = await client.get("/v1/presence", params={"user_ids": other.id}, headers=me.headers)
    assert resp.status == 429, await resp.text()
    assert (await resp.json())["error"]["code"] == "rate_limited"
