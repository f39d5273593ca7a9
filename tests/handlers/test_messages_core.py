"""message.send through RabbitMQ and the persistence worker, live delivery via the relay, sync."""

from __future__ import annotations

import asyncio
from typing import Any

from config import Settings
from storage import events as event_store
from storage.db import Database
from tests.conftest import SocketFactory, signup
from tests.handlers.conversation_helpers import make_group


async def test_send_is_stored_delivered_live_and_synced(
    client: Any, settings: Settings, connect_socket: SocketFactory
) -> None:
    alice, bob = await signup(client), await signup(client)
    conversation_id = await make_group(settings, alice, bob)
    bob_sio = await connect_socket(bob.access_token)
    received: list[dict[str, Any]] = []
    got = asyncio.Event()

    def on_new(data: dict[str, Any]) -> None:
        received.append(data)
        got.set()

    bob_sio.on("message.new", on_new)
    start = (await bob_sio.call("sync", {}, timeout=5))["data"]["cursor"]
    alice_sio = await connect_socket(alice.access_token)
    ack = await alice_sio.call("message.send", {"conversation_id": conversation_id, "body": "hi",
                                                 "client_id": "c1"}, timeout=10)
    assert ack["ok"] is True, ack
    assert ack["data"]["seq"] == 1 and ack["data"]["body"] == "hi"
    await asyncio.wait_for(got.wait(), 5)
    assert received[0]["id"] == ack["data"]["id"]
    assert "cursor" in received[0]

    again = await alice_sio.call("message.send", {"conversation_id": conversation_id, "body": "hi",
                                                   "client_id": "c1"}, timeout=10)
    assert again["data"]["id"] == ack["data"]["id"]

    synced = (await bob_sio.call("sync", {"cursor": start}, timeout=5))["data"]
    assert [e["event"] for e in synced["events"]] == ["message.new"]
    assert synced["events"][0]["data"]["id"] == ack["data"]["id"]
    assert synced["cursor"] == received[0]["cursor"]
    history = (await bob_sio.call("message.list", {"conversation_id": conversation_id},
                                  timeout=5))["data"]
    assert [m["seq"] for m in history["messages"]] == [1]
    db = await Database.connect(settings.database_url or "", 1, 1)
    assert await event_store.latest_event_id(db) >= int(received[0]["cursor"])
    await db.close()
