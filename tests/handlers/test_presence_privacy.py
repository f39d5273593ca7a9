"""Presence subscriptions belong to the socket that asked; blockers' presence stays hidden."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import SocketFactory, signup


async def test_a_subscription_belongs_to_the_socket_that_asked(
    client: Any, connect_socket: SocketFactory
) -> None:
    watcher, watched = await signup(client), await signup(client)
    asking = await connect_socket(watcher.access_token)
    other_tab = await connect_socket(watcher.access_token)  # same session, second socket
    got: dict[str, list[dict[str, Any]]] = {"asking": [], "other": []}
    asking.on("presence", got["asking"].append)
    other_tab.on("presence", got["other"].append)
    ack = await asking.call("presence.subscribe", {"user_ids": [watched.id]}, timeout=5)
    assert ack["ok"] and ack["data"]["presence"][0]["status"] == "offline"
    await connect_socket(watched.access_token)
    async with asyncio.timeout(5):
        while not got["asking"]:
            await asyncio.sleep(0.02)
    assert got["asking"][0]["status"] == "online"
    await asking.call("presence.query", {"user_ids": [watched.id]}, timeout=5)  # a barrier
    assert got["other"] == []


async def test_presence_of_a_user_who_blocked_you_reads_offline(
    client: Any, connect_socket: SocketFactory
) -> None:
    watcher, blocker = await signup(client), await signup(client)
    resp = await client.put(f"/v1/users/me/blocks/{watcher.id}", headers=blocker.headers)
    assert resp.status in (200, 204), await resp.text()
    await connect_socket(blocker.access_token)  # the blocker is online
    sio = await connect_socket(watcher.access_token)
    events: list[dict[str, Any]] = []
    sio.on("presence", events.append)
    ack = await sio.call("presence.subscribe", {"user_ids": [blocker.id]}, timeout=5)
    assert ack["data"]["presence"] == [{"user_id": blocker.id, "status": "offline",
                                        "last_seen": None}]
    query = await sio.call("presence.query", {"user_ids": [blocker.id]}, timeout=5)
    assert query["data"]["presence"][0]["status"] == "offline"
    await connect_socket(blocker.access_token)  # a second device: no event may leak
    await sio.call("presence.query", {"user_ids": [blocker.id]}, timeout=5)
    assert events == []
