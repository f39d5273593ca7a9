"""Conversations live: membership events open and close delivery; sync, list order, unread, mute."""

from __future__ import annotations

import uuid
from typing import Any

import socketio
from aiohttp.test_utils import TestClient

from tests.conftest import Account, SocketFactory, signup
from tests.handlers.conversation_helpers import (
    Inbox,
    call,
    create_group,
    is_event,
    ok,
    refused,
    rest,
    send,
)

Client = TestClient[Any, Any]
EVENTS = ("member.joined", "member.left", "conversation.updated", "message.new")


async def online(connect_socket: SocketFactory, account: Account) -> tuple[socketio.AsyncClient, Inbox]:
    sio = await connect_socket(account.access_token)
    return sio, Inbox(sio, *EVENTS)


async def barrier(sio: socketio.AsyncClient, inbox: Inbox, conversation_id: str) -> None:
    """Wait for an event only this user gets: the relay sends events in order, so every
    earlier event meant for this user's sockets has arrived once it is seen."""
    await ok_ack(call(sio, "conversation.mute", {"conversation_id": conversation_id}))
    await inbox.wait_for(is_event("conversation.updated", conversation_id=conversation_id,
                                  muted=True))


async def ok_ack(pending: Any) -> dict[str, Any]:
    ack = await pending
    assert ack["ok"], ack
    return dict(ack["data"] or {})


async def test_added_member_gets_joined_then_messages(
    client: Client, connect_socket: SocketFactory
) -> None:
    alice, bob, carol = [await signup(client) for _ in range(3)]
    cid = (await create_group(client, alice, bob))["id"]
    alice_sio, _ = await online(connect_socket, alice)
    carol_sio, carol_inbox = await online(connect_socket, carol)
    await send(alice_sio, cid, "before carol")
    added = await ok(await rest(client, alice, "conversation.member.add",
                                {"conversation_id": cid, "user_ids": [carol.id]}))
    assert added["added"] == [carol.id]
    joined = await carol_inbox.wait_for(is_event("member.joined", conversation_id=cid))
    data = carol_inbox.events[joined][1]
    assert data["user_ids"] == [carol.id] and data["by"] == alice.id
    assert data["conversation"]["id"] == cid and data["conversation"]["member_count"] == 3
    assert data["conversation"]["title"] == "group" and "cursor" in data
    message = await send(alice_sio, cid, "hello carol")
    got = await carol_inbox.wait_for(is_event("message.new", id=message["id"]))
    assert got > joined
    assert [d["body"] for n, d in carol_inbox.events if n == "message.new"] == ["hello carol"]
    # Carol can write to the group too, and what was sent before she joined is not unread.
    await send(carol_sio, cid, "hi all")
    seen = await ok(await rest(client, carol, "conversation.get", {"conversation_id": cid}))
    assert seen["unread"] == 1 and seen["last_read_seq"] == 1


async def test_new_dm_reaches_the_peer_live(
    client: Client, connect_socket: SocketFactory
) -> None:
    alice, bob = await signup(client), await signup(client)
    alice_sio, alice_inbox = await online(connect_socket, alice)
    _, bob_inbox = await online(connect_socket, bob)
    dm = await ok_ack(call(alice_sio, "conversation.open_direct", {"user_id": bob.id}))
    joined = await alice_inbox.wait_for(is_event("member.joined", conversation_id=dm["id"]))
    assert sorted(alice_inbox.events[joined][1]["user_ids"]) == sorted([alice.id, bob.id])
    message = await send(alice_sio, dm["id"], "psst")
    await bob_inbox.wait_for(is_event("message.new", id=message["id"]))


async def test_every_new_member_on_a_node_gets_member_joined(
    client: Client, connect_socket: SocketFactory
) -> None:
    alice, bob, carol = [await signup(client) for _ in range(3)]
    connected = [await online(connect_socket, p) for p in (alice, bob, carol)]
    alice_sio, inboxes = connected[0][0], [inbox for _, inbox in connected]
    group = await create_group(client, alice, bob, carol)
    for inbox in inboxes:
        await inbox.wait_for(is_event("member.joined", conversation_id=group["id"]), timeout=5)
    # Once a later message arrived everywhere, each member must have seen the join exactly once.
    await send(alice_sio, group["id"], "after the join")
    for inbox in inboxes:
        await inbox.wait_for(is_event("message.new", conversation_id=group["id"]), timeout=5)
        joins = [d for n, d in inbox.events
                 if n == "member.joined" and d["conversation_id"] == group["id"]]
        assert len(joins) == 1, joins


async def test_removed_member_stops_receiving(
    client: Client, connect_socket: SocketFactory
) -> None:
    alice, bob, carol = [await signup(client) for _ in range(3)]
    cid = (await create_group(client, alice, bob, carol))["id"]
    own = (await create_group(client, carol, alice))["id"]
    alice_sio, _ = await online(connect_socket, alice)
    _, bob_inbox = await online(connect_socket, bob)
    carol_sio, carol_inbox = await online(connect_socket, carol)
    first = await send(alice_sio, cid, "one")
    await carol_inbox.wait_for(is_event("message.new", id=first["id"]))

    await ok(await rest(client, alice, "conversation.member.remove",
                        {"conversation_id": cid, "user_id": carol.id}), 204)
    left = await carol_inbox.wait_for(is_event("member.left", conversation_id=cid))
    assert carol_inbox.events[left][1]["reason"] == "removed"
    assert carol_inbox.events[left][1]["user_ids"] == [carol.id]
    await bob_inbox.wait_for(is_event("member.left", conversation_id=cid))

    second = await send(alice_sio, cid, "two")
    await bob_inbox.wait_for(is_event("message.new", id=second["id"]))
    await barrier(carol_sio, carol_inbox, own)
    assert not any(n == "message.new" and d["id"] == second["id"] for n, d in carol_inbox.events)
    # Her own writes and reads are refused as if the group did not exist.
    ack = await call(carol_sio, "message.send", {"conversation_id": cid, "body": "x",
                                                 "client_id": "late"})
    assert ack["ok"] is False and ack["error"]["code"] == "not_found"


async def test_leaving_ends_delivery_and_hands_over(
    client: Client, connect_socket: SocketFactory
) -> None:
    alice, bob = await signup(client), await signup(client)
    cid = (await create_group(client, alice, bob))["id"]
    own = (await create_group(client, alice, bob, title="other"))["id"]
    alice_sio, alice_inbox = await online(connect_socket, alice)
    bob_sio, bob_inbox = await online(connect_socket, bob)
    await ok_ack(call(alice_sio, "conversation.leave", {"conversation_id": cid}))
    left = await bob_inbox.wait_for(is_event("member.left", conversation_id=cid))
    assert bob_inbox.events[left][1]["reason"] == "left"
    handed = await bob_inbox.wait_for(is_event("conversation.updated", conversation_id=cid))
    assert handed > left
    assert bob_inbox.events[handed][1]["roles"] == [{"user_id": bob.id, "role": "owner"}]
    message = await send(bob_sio, cid, "anyone?")
    await barrier(alice_sio, alice_inbox, own)
    assert not any(n == "message.new" and d["id"] == message["id"] for n, d in alice_inbox.events)
    assert not any(n == "conversation.updated" and d.get("roles") for n, d in alice_inbox.events)


async def test_update_is_broadcast_to_members(
    client: Client, connect_socket: SocketFactory
) -> None:
    alice, bob = await signup(client), await signup(client)
    cid = (await create_group(client, alice, bob))["id"]
    _, bob_inbox = await online(connect_socket, bob)
    await ok(await rest(client, alice, "conversation.update",
                        {"conversation_id": cid, "title": "Renamed"}))
    got = await bob_inbox.wait_for(is_event("conversation.updated", conversation_id=cid))
    data = bob_inbox.events[got][1]
    assert data["title"] == "Renamed" and data["by"] == alice.id and data["avatar_url"] is None


async def test_sync_of_a_removed_member_stops_at_member_left(
    client: Client, connect_socket: SocketFactory
) -> None:
    alice, bob, carol = [await signup(client) for _ in range(3)]
    cid = (await create_group(client, alice, bob, carol))["id"]
    carol_sio = await connect_socket(carol.access_token)
    start = (await ok_ack(call(carol_sio, "sync", {})))["cursor"]
    alice_sio = await connect_socket(alice.access_token)
    before = await send(alice_sio, cid, "before")
    await ok(await rest(client, alice, "conversation.member.remove",
                        {"conversation_id": cid, "user_id": carol.id}), 204)
    await send(alice_sio, cid, "after")
    await ok(await rest(client, alice, "conversation.update",
                        {"conversation_id": cid, "title": "secret"}))
    page = await ok_ack(call(carol_sio, "sync", {"cursor": start}))
    kinds = [(e["event"], e["data"].get("conversation_id")) for e in page["events"]]
    assert kinds == [("message.new", cid), ("member.left", cid)]
    assert page["events"][0]["data"]["id"] == before["id"]
    assert page["events"][1]["data"]["reason"] == "removed"
    bob_page = await ok(await rest(client, bob, "sync", {"cursor": start}))
    assert [e["event"] for e in bob_page["events"]] == [
        "message.new", "member.left", "message.new", "conversation.updated"]
    # Added back, she syncs from her new member.joined on, not what she missed.
    await ok(await rest(client, alice, "conversation.member.add",
                        {"conversation_id": cid, "user_ids": [carol.id]}))
    page = await ok_ack(call(carol_sio, "sync", {"cursor": page["cursor"]}))
    assert [e["event"] for e in page["events"]] == ["member.joined"]


async def test_sync_shows_a_new_member_their_join(
    client: Client, connect_socket: SocketFactory
) -> None:
    alice, bob = await signup(client), await signup(client)
    bob_sio = await connect_socket(bob.access_token)
    start = (await ok_ack(call(bob_sio, "sync", {})))["cursor"]
    group = await create_group(client, alice, bob)
    page = await ok_ack(call(bob_sio, "sync", {"cursor": start}))
    assert [e["event"] for e in page["events"]] == ["member.joined"]
    assert page["events"][0]["data"]["conversation"]["id"] == group["id"]


async def test_list_orders_by_activity_and_pages(
    client: Client, connect_socket: SocketFactory
) -> None:
    alice, bob, carol = [await signup(client) for _ in range(3)]
    first = (await create_group(client, alice, bob, title="first"))["id"]
    second = (await create_group(client, alice, carol, title="second"))["id"]
    dm = (await ok(await rest(client, alice, "conversation.open_direct",
                              {"user_id": bob.id})))["id"]
    bob_sio = await connect_socket(bob.access_token)
    carol_sio = await connect_socket(carol.access_token)
    alice_sio = await connect_socket(alice.access_token)
    # Newest activity first: a message moves a conversation to the top.
    await send(bob_sio, first, "f1")
    await send(bob_sio, first, "f2")
    await send(carol_sio, second, "s1")
    await send(alice_sio, dm, "mine")
    listed = await ok(await rest(client, alice, "conversation.list"))
    assert [c["id"] for c in listed["conversations"]] == [dm, second, first]
    assert listed["next_cursor"] is None
    by_id = {c["id"]: c for c in listed["conversations"]}
    assert (by_id[first]["unread"], by_id[second]["unread"], by_id[dm]["unread"]) == (2, 1, 0)
    assert by_id[first]["last_message"]["body"] == "f2"
    assert by_id[first]["last_message"]["sender_id"] == bob.id
    assert by_id[dm]["peer"] == bob.id and by_id[first]["last_seq"] == 2
    assert listed["total_unread"] == 3

    await send(bob_sio, first, "f3")
    pages: list[str] = []
    cursor: str | None = None
    for _ in range(5):
        query: dict[str, Any] = {"limit": 1} if cursor is None else {"limit": 1, "cursor": cursor}
        page = await ok_ack(call(alice_sio, "conversation.list", query))
        pages += [c["id"] for c in page["conversations"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [first, dm, second]

    # Reading clears unread; muting leaves the per-conversation count but not the total.
    await ok_ack(call(alice_sio, "receipt.mark_read", {"conversation_id": first, "seq": 3}))
    await ok_ack(call(alice_sio, "conversation.mute", {"conversation_id": second}))
    listed = await ok(await rest(client, alice, "conversation.list", {"limit": 50}))
    by_id = {c["id"]: c for c in listed["conversations"]}
    assert by_id[first]["unread"] == 0 and by_id[second]["unread"] == 1
    assert by_id[second]["muted"] is True and by_id[first]["muted"] is False
    assert listed["total_unread"] == 0


async def test_deleted_last_message_is_shown_as_deleted(
    client: Client, connect_socket: SocketFactory
) -> None:
    alice, bob = await signup(client), await signup(client)
    cid = (await create_group(client, alice, bob))["id"]
    bob_sio = await connect_socket(bob.access_token)
    message = await send(bob_sio, cid, "oops")
    await ok_ack(call(bob_sio, "message.delete", {"message_id": message["id"]}))
    listed = await ok(await rest(client, alice, "conversation.list"))
    last = listed["conversations"][0]["last_message"]
    assert last["id"] == message["id"] and last["deleted"] is True and last["body"] is None
    assert listed["conversations"][0]["unread"] == 0


async def test_mute_goes_to_the_muters_devices_only(
    client: Client, connect_socket: SocketFactory
) -> None:
    alice, bob = await signup(client), await signup(client)
    cid = (await create_group(client, alice, bob))["id"]
    own = (await create_group(client, bob, alice, title="bob's"))["id"]
    alice_sio, alice_inbox = await online(connect_socket, alice)
    _, alice_other_inbox = await online(connect_socket, alice)
    bob_sio, bob_inbox = await online(connect_socket, bob)
    await ok_ack(call(alice_sio, "conversation.mute", {"conversation_id": cid}))
    for inbox in (alice_inbox, alice_other_inbox):
        got = await inbox.wait_for(is_event("conversation.updated", conversation_id=cid))
        assert inbox.events[got][1]["muted"] is True
    await barrier(bob_sio, bob_inbox, own)
    assert not any(d.get("conversation_id") == cid for _, d in bob_inbox.events)
    await ok_ack(call(alice_sio, "conversation.unmute", {"conversation_id": cid}))
    await alice_inbox.wait_for(is_event("conversation.updated", conversation_id=cid,
                                        muted=False, muted_until=None))


async def test_blocked_user_cannot_message_in_an_existing_dm(
    client: Client, connect_socket: SocketFactory
) -> None:
    alice, bob = await signup(client), await signup(client)
    dm = (await ok(await rest(client, alice, "conversation.open_direct",
                              {"user_id": bob.id})))["id"]
    await ok(await rest(client, bob, "user.block", {"user_id": alice.id}), 204)
    alice_sio = await connect_socket(alice.access_token)
    ack = await call(alice_sio, "message.send", {"conversation_id": dm, "body": "hey",
                                                 "client_id": uuid.uuid4().hex})
    assert ack["ok"] is False and ack["error"]["code"] == "forbidden"
    await refused(await rest(client, alice, "conversation.open_direct", {"user_id": bob.id}),
                  403, "forbidden")
