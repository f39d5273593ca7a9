"""message.send through RabbitMQ and the persistence worker, live delivery via the relay, sync."""

from __future__ import annotations

import asyncio
from typing import Any

from config import Settings
from storage import conversations as conversation_store
from storage import events as event_store
from storage.db import Database
from tests.conftest import Account, SocketFactory, signup


async def make_group(settings: Settings, owner: Account, *others: Account) -> str:
    """A group straight in storage, for tests of the message path alone."""
    import uuid

    db = await Database.connect(settings.database_url or "", 1, 2)
    try:
        async with db.transaction() as conn:
            conv = await conversation_store.insert_conversation(
                conn, kind="group", title="t", avatar_url=None,
                created_by=uuid.UUID(owner.id), key=None)
            assert conv is not None
            members = [(uuid.UUID(owner.id), "owner"), *((uuid.UUID(o.id), "member") for o in others)]
            await conversation_store.upsert_members(conn, conv.id, members, 0)
        return str(conv.id)
    finally:
        await db.close()


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
    history = (await bob_sio.call("message.history", {"conversation_id": conversation_id},
                                  timeout=5))["data"]
    assert [m["seq"] for m in history["messages"]] == [1]
    db = await Database.connect(settings.database_url or "", 1, 1)
    assert await event_store.latest_event_id(db) >= int(received[0]["cursor"])
    await db.close()
