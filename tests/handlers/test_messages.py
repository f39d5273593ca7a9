"""Message commands: validation, authorization, edits, tombstones, reactions, receipts, history, sync."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
import socketio

from config import Rates, Settings
from tests.conftest import Account, AppFactory, SocketFactory, signup
from tests.handlers.conversation_helpers import make_group


async def call(sio: socketio.AsyncClient, name: str, payload: dict[str, Any]) -> dict[str, Any]:
    reply: dict[str, Any] = await sio.call(name, payload, timeout=10)
    return reply


async def send(sio: socketio.AsyncClient, conversation_id: str, body: str,
               client_id: str | None = None) -> dict[str, Any]:
    ack = await call(sio, "message.send", {"conversation_id": conversation_id, "body": body,
                                           "client_id": client_id or uuid.uuid4().hex})
    assert ack["ok"], ack
    return dict(ack["data"])


@pytest.fixture
async def trio(client: Any, settings: Settings,
               connect_socket: SocketFactory) -> tuple[str, list[Account], list[socketio.AsyncClient]]:
    """A group of alice (owner), bob and carol, each with a socket."""
    people = [await signup(client) for _ in range(3)]
    conversation_id = await make_group(settings, *people)
    sockets = [await connect_socket(p.access_token) for p in people]
    return conversation_id, people, sockets


@pytest.mark.parametrize(("payload", "field"), [
    ({"body": "x", "client_id": "a"}, "conversation_id"),
    ({"conversation_id": "nope", "body": "x", "client_id": "a"}, "conversation_id"),
    ({"conversation_id": str(uuid.uuid4()), "body": "x"}, "client_id"),
    ({"conversation_id": str(uuid.uuid4()), "body": "x", "client_id": ""}, "client_id"),
    ({"conversation_id": str(uuid.uuid4()), "body": "x", "client_id": "c" * 65}, "client_id"),
    ({"conversation_id": str(uuid.uuid4()), "body": "x" * 4001, "client_id": "a"}, "body"),
    ({"conversation_id": str(uuid.uuid4()), "body": 5, "client_id": "a"}, "body"),
    ({"conversation_id": str(uuid.uuid4()), "body": "x", "client_id": "a", "extra": 1}, "extra"),
    ({"conversation_id": str(uuid.uuid4()), "media_ids": ["x"], "client_id": "a"}, "media_ids.0"),
])
async def test_send_bad_input(trio: Any, payload: dict[str, Any], field: str) -> None:
    _, _, sockets = trio
    ack = await call(sockets[0], "message.send", payload)
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_input"
    assert field in [f["field"] for f in ack["error"]["details"]["fields"]]


async def test_empty_message_is_invalid(trio: Any) -> None:
    conversation_id, _, sockets = trio
    for body in ("", "   "):
        ack = await call(sockets[0], "message.send", {"conversation_id": conversation_id,
                                                      "body": body, "client_id": "e"})
        assert ack["error"]["code"] == "invalid_input"


async def test_strangers_and_unknown_conversations_get_not_found(
    trio: Any, client: Any, connect_socket: SocketFactory
) -> None:
    conversation_id, _, sockets = trio
    message = await send(sockets[0], conversation_id, "secret")
    stranger = await connect_socket((await signup(client)).access_token)
    for name, payload in [
        ("message.send", {"conversation_id": conversation_id, "body": "x", "client_id": "s"}),
        ("message.send", {"conversation_id": str(uuid.uuid4()), "body": "x", "client_id": "s"}),
        ("message.list", {"conversation_id": conversation_id}),
        ("message.edit", {"message_id": message["id"], "body": "hacked"}),
        ("message.delete", {"message_id": message["id"]}),
        ("message.react", {"message_id": message["id"], "emoji": "👍"}),
        ("receipt.mark_read", {"conversation_id": conversation_id, "seq": 1}),
    ]:
        ack = await call(stranger, name, payload)
        assert ack["ok"] is False and ack["error"]["code"] == "not_found", (name, ack)


async def test_anonymous_socket_cannot_send(connect_socket: SocketFactory) -> None:
    sio = await connect_socket()
    ack = await call(sio, "message.send", {"conversation_id": str(uuid.uuid4()), "body": "x",
                                           "client_id": "a"})
    assert ack["error"]["code"] == "unauthorized"


async def test_removed_member_loses_access(trio: Any, settings: Settings) -> None:
    conversation_id, people, sockets = trio
    message = await send(sockets[0], conversation_id, "before")
    conn = await asyncpg.connect(settings.database_url)
    await conn.execute("UPDATE conversation_members SET active = false WHERE conversation_id = $1 "
                       "AND user_id = $2", uuid.UUID(conversation_id), uuid.UUID(people[2].id))
    await conn.close()
    for name, payload in [
        ("message.send", {"conversation_id": conversation_id, "body": "x", "client_id": "r"}),
        ("message.list", {"conversation_id": conversation_id}),
        ("message.react", {"message_id": message["id"], "emoji": "👍"}),
    ]:
        assert (await call(sockets[2], name, payload))["error"]["code"] == "not_found"


async def test_reply_to_must_be_in_the_same_conversation(trio: Any, client: Any,
                                                         settings: Settings) -> None:
    conversation_id, people, sockets = trio
    parent = await send(sockets[0], conversation_id, "parent")
    reply = await call(sockets[1], "message.send", {
        "conversation_id": conversation_id, "body": "child", "client_id": "r1",
        "reply_to": parent["id"]})
    assert reply["ok"] and reply["data"]["reply_to"] == parent["id"]
    other = await make_group(settings, people[0], people[1])
    elsewhere = await call(sockets[1], "message.send", {
        "conversation_id": other, "body": "x", "client_id": "r2", "reply_to": parent["id"]})
    assert elsewhere["error"]["code"] == "invalid_input"


async def test_client_id_reused_in_another_conversation_is_a_conflict(
    trio: Any, settings: Settings
) -> None:
    conversation_id, people, sockets = trio
    await send(sockets[0], conversation_id, "one", client_id="same")
    other = await make_group(settings, people[0], people[1])
    ack = await call(sockets[0], "message.send", {"conversation_id": other, "body": "two",
                                                  "client_id": "same"})
    assert ack["error"]["code"] == "conflict"


async def test_seqs_are_gap_free_under_concurrent_senders(trio: Any) -> None:
    conversation_id, _, sockets = trio
    acks = await asyncio.gather(*(
        send(sockets[i % 3], conversation_id, f"m{i}") for i in range(15)))
    assert sorted(a["seq"] for a in acks) == list(range(1, 16))


async def test_edit_rules_and_live_update(trio: Any, settings: Settings) -> None:
    conversation_id, _, sockets = trio
    updates: list[dict[str, Any]] = []
    sockets[1].on("message.updated", updates.append)
    message = await send(sockets[0], conversation_id, "typo")
    assert (await call(sockets[1], "message.edit", {"message_id": message["id"], "body": "mine"})
            )["error"]["code"] == "forbidden"
    assert (await call(sockets[0], "message.edit", {"message_id": message["id"], "body": ""})
            )["error"]["code"] == "invalid_input"
    edited = await call(sockets[0], "message.edit", {"message_id": message["id"], "body": "fixed"})
    assert edited["ok"] and edited["data"]["body"] == "fixed" and edited["data"]["edited_at"]
    async with asyncio.timeout(5):
        while not updates:
            await asyncio.sleep(0.02)
    assert updates[0]["body"] == "fixed" and updates[0]["seq"] == message["seq"]
    conn = await asyncpg.connect(settings.database_url)
    await conn.execute("UPDATE messages SET created_at = now() - interval '25 hours' WHERE id = $1",
                       uuid.UUID(message["id"]))
    await conn.close()
    late = await call(sockets[0], "message.edit", {"message_id": message["id"], "body": "late"})
    assert late["error"]["code"] == "forbidden"
    assert late["error"]["details"] == {"reason": "edit_window"}


async def test_delete_leaves_a_tombstone_sender_or_admin_only(trio: Any) -> None:
    conversation_id, _, sockets = trio
    deleted: list[dict[str, Any]] = []
    sockets[2].on("message.deleted", deleted.append)
    mine = await send(sockets[1], conversation_id, "bob's")
    assert (await call(sockets[2], "message.delete", {"message_id": mine["id"]})
            )["error"]["code"] == "forbidden"
    assert (await call(sockets[0], "message.delete", {"message_id": mine["id"]}))["ok"]  # owner
    assert (await call(sockets[0], "message.delete", {"message_id": mine["id"]}))["ok"]  # idempotent
    history = (await call(sockets[2], "message.list", {"conversation_id": conversation_id})
               )["data"]["messages"]
    assert history[0]["deleted"] is True and history[0]["body"] is None
    assert history[0]["seq"] == mine["seq"]
    async with asyncio.timeout(5):
        while not deleted:
            await asyncio.sleep(0.02)
    assert deleted[0]["id"] == mine["id"]
    assert (await call(sockets[1], "message.edit", {"message_id": mine["id"], "body": "x"})
            )["error"]["code"] == "conflict"


async def test_reactions_one_per_user_per_emoji(trio: Any) -> None:
    conversation_id, _, sockets = trio
    seen: list[dict[str, Any]] = []
    sockets[0].on("reaction.updated", seen.append)
    message = await send(sockets[0], conversation_id, "react to me")
    for sio in sockets[1:]:
        assert (await call(sio, "message.react", {"message_id": message["id"], "emoji": "👍"}))["ok"]
    again = await call(sockets[1], "message.react", {"message_id": message["id"], "emoji": "👍"})
    assert again["data"] == {"message_id": message["id"], "reactions": {"👍": 2}, "changed": False}
    removed = await call(sockets[2], "message.unreact", {"message_id": message["id"], "emoji": "👍"})
    assert removed["data"]["reactions"] == {"👍": 1}
    for bad in ("", "a b", "x" * 17):
        assert (await call(sockets[1], "message.react", {"message_id": message["id"], "emoji": bad})
                )["error"]["code"] == "invalid_input"
    async with asyncio.timeout(5):
        while len(seen) < 3:
            await asyncio.sleep(0.02)
    assert [e["action"] for e in seen] == ["added", "added", "removed"]
    history = (await call(sockets[0], "message.list", {"conversation_id": conversation_id})
               )["data"]["messages"]
    assert history[-1]["reactions"] == {"👍": 1}


async def test_receipts_are_monotonic_and_unread_counts_follow(trio: Any) -> None:
    conversation_id, people, sockets = trio
    receipts: list[dict[str, Any]] = []
    sockets[0].on("receipt", receipts.append)
    for i in range(3):
        await send(sockets[0], conversation_id, f"m{i}")
    ahead = await call(sockets[1], "receipt.mark_read", {"conversation_id": conversation_id, "seq": 9})
    assert ahead["error"]["code"] == "invalid_input"
    delivered = await call(sockets[1], "receipt.mark_delivered", {"conversation_id": conversation_id,
                                                             "seq": 3})
    assert delivered["data"]["delivered_seq"] == 3 and delivered["data"]["unread"] == 3
    read = await call(sockets[1], "receipt.mark_read", {"conversation_id": conversation_id, "seq": 2})
    assert read["data"]["read_seq"] == 2 and read["data"]["unread"] == 1
    back = await call(sockets[1], "receipt.mark_read", {"conversation_id": conversation_id, "seq": 1})
    assert back["data"]["read_seq"] == 2
    async with asyncio.timeout(5):
        while len(receipts) < 2:
            await asyncio.sleep(0.02)
    assert receipts[-1] == {"conversation_id": conversation_id, "user_id": people[1].id,
                            "read_seq": 2, "delivered_seq": 3, "cursor": receipts[-1]["cursor"]}


async def test_history_pages_both_ways(trio: Any, make_client: AppFactory) -> None:
    conversation_id, _, sockets = trio
    for i in range(7):
        await send(sockets[0], conversation_id, f"m{i}")
    newest = (await call(sockets[1], "message.list", {"conversation_id": conversation_id,
                                                         "limit": 3}))["data"]
    assert [m["seq"] for m in newest["messages"]] == [5, 6, 7] and newest["has_more"]
    older = (await call(sockets[1], "message.list", {"conversation_id": conversation_id,
                                                        "before_seq": 5, "limit": 3}))["data"]
    assert [m["seq"] for m in older["messages"]] == [2, 3, 4] and older["has_more"]
    oldest = (await call(sockets[1], "message.list", {"conversation_id": conversation_id,
                                                         "before_seq": 2, "limit": 3}))["data"]
    assert [m["seq"] for m in oldest["messages"]] == [1] and not oldest["has_more"]
    forward = (await call(sockets[1], "message.list", {"conversation_id": conversation_id,
                                                          "after_seq": 5}))["data"]
    assert [m["seq"] for m in forward["messages"]] == [6, 7] and not forward["has_more"]
    for bad in ({"limit": 101}, {"limit": 0}, {"before_seq": 3, "after_seq": 1}):
        ack = await call(sockets[1], "message.list", {"conversation_id": conversation_id, **bad})
        assert ack["error"]["code"] == "invalid_input"


async def test_sync_returns_exactly_the_missed_events_in_order(
    trio: Any, connect_socket: SocketFactory
) -> None:
    conversation_id, people, sockets = trio
    cursor = (await call(sockets[1], "sync", {}))["data"]["cursor"]
    await sockets[1].disconnect()
    first = await send(sockets[0], conversation_id, "while you were away")
    await call(sockets[0], "message.edit", {"message_id": first["id"], "body": "edited away"})
    await call(sockets[2], "message.react", {"message_id": first["id"], "emoji": "🔥"})
    second = await send(sockets[2], conversation_id, "another")
    await call(sockets[0], "message.delete", {"message_id": second["id"]})
    bob = await connect_socket(people[1].access_token)
    page = (await call(bob, "sync", {"cursor": cursor, "limit": 3}))["data"]
    assert [e["event"] for e in page["events"]] == ["message.new", "message.updated",
                                                    "reaction.updated"]
    assert page["has_more"] is True
    rest = (await call(bob, "sync", {"cursor": page["cursor"]}))["data"]
    assert [e["event"] for e in rest["events"]] == ["message.new", "message.deleted"]
    assert rest["has_more"] is False
    cursors = [int(e["data"]["cursor"]) for e in page["events"] + rest["events"]]
    assert cursors == sorted(cursors)
    done = (await call(bob, "sync", {"cursor": rest["cursor"]}))["data"]
    assert done["events"] == [] and done["cursor"] == rest["cursor"]
    assert (await call(bob, "sync", {"cursor": "abc"}))["error"]["code"] == "invalid_input"


async def test_a_cursor_older_than_the_retention_window_gets_a_gap(
    trio: Any, settings: Settings
) -> None:
    conversation_id, _, sockets = trio
    await send(sockets[0], conversation_id, "old")
    conn = await asyncpg.connect(settings.database_url)
    await conn.execute("UPDATE event_horizon SET purged_to = purged_to + 1000000")
    try:
        page = (await call(sockets[1], "sync", {"cursor": "1"}))["data"]
        assert page["gap"] is True and page["events"] == []
    finally:
        await conn.execute("UPDATE event_horizon SET purged_to = purged_to - 1000000")
        await conn.close()


async def test_send_rate_limit(make_client: AppFactory, settings: Settings,
                               connect_socket: SocketFactory) -> None:
    node = await make_client(rates=Rates(message_send=(3, 10)))
    alice, bob = await signup(node), await signup(node)
    conversation_id = await make_group(settings, alice, bob)
    sio = await connect_socket(alice.access_token, target=node)
    for i in range(3):
        await send(sio, conversation_id, f"m{i}")
    limited = await call(sio, "message.send", {"conversation_id": conversation_id, "body": "4",
                                               "client_id": "x4"})
    assert limited["error"]["code"] == "rate_limited"
    assert limited["error"]["details"]["retry_after"] >= 1


async def test_rest_twins(client: Any, settings: Settings) -> None:
    alice, bob = await signup(client), await signup(client)
    conversation_id = await make_group(settings, alice, bob)
    resp = await client.post(f"/v1/conversations/{conversation_id}/messages",
                             json={"body": "over rest", "client_id": "rest-1"},
                             headers=alice.headers)
    assert resp.status == 201, await resp.text()
    message = await resp.json()
    resp = await client.get(f"/v1/conversations/{conversation_id}/messages?limit=10",
                            headers=bob.headers)
    assert [m["id"] for m in (await resp.json())["messages"]] == [message["id"]]
    resp = await client.put(f"/v1/messages/{message['id']}/reactions/%F0%9F%91%8D",
                            headers=bob.headers)
    assert (await resp.json())["reactions"] == {"👍": 1}
    resp = await client.post(f"/v1/conversations/{conversation_id}/read", json={"seq": 1},
                             headers=bob.headers)
    assert (await resp.json())["unread"] == 0
    resp = await client.get("/v1/sync?cursor=0", headers=bob.headers)
    assert resp.status == 200


async def test_retention_purges_old_events_and_old_cursors_get_a_gap(
    trio: Any, settings: Settings
) -> None:
    from datetime import UTC, datetime, timedelta

    from storage.db import Database
    from workers.retention import EventRetention

    conversation_id, _, sockets = trio
    cursor = (await call(sockets[1], "sync", {}))["data"]["cursor"]
    await send(sockets[0], conversation_id, "old news")
    db = await Database.connect(settings.database_url or "", 1, 1)
    try:
        future = datetime.now(UTC) + timedelta(days=31)
        retention = EventRetention(db, 30 * 24 * 3600, lambda: future)
        assert await retention.purge_once() >= 1
    finally:
        await db.close()
    page = (await call(sockets[1], "sync", {"cursor": cursor}))["data"]
    assert page["gap"] is True and page["events"] == []
    fresh = (await call(sockets[1], "sync", {"cursor": page["cursor"]}))["data"]
    assert fresh["gap"] is False


async def test_nul_characters_are_refused_at_the_door(trio: Any) -> None:
    conversation_id, _, sockets = trio
    for payload in ({"body": "a\x00b", "client_id": "n1"}, {"body": "ok", "client_id": "n\x00"}):
        ack = await call(sockets[0], "message.send", {"conversation_id": conversation_id,
                                                      **payload})
        assert ack["error"]["code"] == "invalid_input", ack
    message = await send(sockets[0], conversation_id, "fine")
    for body in ("x\x00", "   "):
        ack = await call(sockets[0], "message.edit", {"message_id": message["id"], "body": body})
        assert ack["error"]["code"] == "invalid_input", ack


async def test_the_blocker_cannot_write_into_the_dm_either(client: Any,
                                                           connect_socket: SocketFactory) -> None:
    alice, bob = await signup(client), await signup(client)
    resp = await client.post("/v1/conversations/direct", json={"user_id": bob.id},
                             headers=alice.headers)
    conversation_id = (await resp.json())["id"]
    resp = await client.put(f"/v1/users/me/blocks/{bob.id}", headers=alice.headers)
    assert resp.status in (200, 204)
    for sender in (alice, bob):
        sio = await connect_socket(sender.access_token)
        ack = await call(sio, "message.send", {"conversation_id": conversation_id, "body": "hi",
                                               "client_id": uuid.uuid4().hex})
        assert ack["error"]["code"] == "forbidden", ack
