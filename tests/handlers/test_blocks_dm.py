"""A block either way stops every write in the DM: sends, typing, reactions and edits."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.conftest import Account, SocketFactory, signup
from tests.handlers.conversation_helpers import create_group, ok, refused, rest

Client = Any


async def _send(client: Client, sender: Account, conversation_id: str) -> dict[str, Any]:
    resp = await rest(client, sender, "message.send", {
        "conversation_id": conversation_id, "body": "before the block",
        "client_id": uuid.uuid4().hex})
    return dict(await ok(resp, 201))


@pytest.mark.parametrize("blocker", ["me", "them"])
async def test_a_block_stops_typing_reactions_and_edits_in_the_dm(
    client: Client, blocker: str
) -> None:
    me, them = await signup(client), await signup(client)
    dm = await ok(await rest(client, me, "conversation.open_direct", {"user_id": them.id}))
    mine, theirs = await _send(client, me, dm["id"]), await _send(client, them, dm["id"])
    await ok(await rest(client, me, "message.react", {"message_id": theirs["id"], "emoji": "👍"}))

    by, other = (me, them) if blocker == "me" else (them, me)
    await ok(await rest(client, by, "user.block", {"user_id": other.id}), 204)

    writes = [
        ("typing.start", {"conversation_id": dm["id"]}),
        ("message.react", {"message_id": theirs["id"], "emoji": "🎉"}),
        ("message.unreact", {"message_id": theirs["id"], "emoji": "👍"}),
        ("message.edit", {"message_id": mine["id"], "body": "after the block"}),
        ("message.send", {"conversation_id": dm["id"], "body": "after the block",
                          "client_id": uuid.uuid4().hex}),
    ]
    for name, payload in writes:
        error = await refused(await rest(client, me, name, payload), 403, "forbidden")
        assert error["details"]["reason"] == "blocked", (name, error)
    # Nothing changed: the message keeps its body and the one reaction from before.
    page = await ok(await rest(client, me, "message.list", {"conversation_id": dm["id"]}))
    by_id = {m["id"]: m for m in page["messages"]}
    assert by_id[mine["id"]]["body"] == "before the block"
    assert by_id[theirs["id"]]["reactions"] == {"👍": 1}

    # Stopping typing is no write the other side sees begin: still allowed.
    await ok(await rest(client, me, "typing.stop", {"conversation_id": dm["id"]}))
    await ok(await rest(client, by, "user.unblock", {"user_id": other.id}), 204)
    await ok(await rest(client, me, "typing.start", {"conversation_id": dm["id"]}))
    edited = await ok(await rest(client, me, "message.edit",
                                 {"message_id": mine["id"], "body": "after the unblock"}))
    assert edited["body"] == "after the unblock"


async def test_a_block_does_not_stop_writes_in_a_shared_group(client: Client) -> None:
    me, them = await signup(client), await signup(client)
    group = await create_group(client, them, me)
    theirs = await _send(client, them, group["id"])
    await ok(await rest(client, them, "user.block", {"user_id": me.id}), 204)
    await ok(await rest(client, me, "typing.start", {"conversation_id": group["id"]}))
    reacted = await ok(await rest(client, me, "message.react",
                                  {"message_id": theirs["id"], "emoji": "👍"}))
    assert reacted["reactions"] == {"👍": 1}


async def test_a_send_the_worker_refuses_names_the_block_too(
    client: Client, connect_socket: SocketFactory
) -> None:
    me, them = await signup(client), await signup(client)
    dm = await ok(await rest(client, me, "conversation.open_direct", {"user_id": them.id}))
    # Holding a socket, the sender's node tracks the membership and leaves the check to the
    # storing worker.
    sio = await connect_socket(me.access_token)
    await ok(await rest(client, them, "user.block", {"user_id": me.id}), 204)
    ack = await sio.call("message.send", {"conversation_id": dm["id"], "body": "hi",
                                          "client_id": uuid.uuid4().hex}, timeout=10)
    assert ack["ok"] is False
    assert ack["error"]["code"] == "forbidden"
    assert ack["error"]["details"] == {"reason": "blocked"}
