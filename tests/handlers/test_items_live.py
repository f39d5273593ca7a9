"""Live item events from the item commands, seen by a subscribed python-socketio client;
and the odd corners: expired stories, kinds item.edit leaves alone."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import SocketFactory, signup
from tests.handlers.conversation_helpers import Inbox, call, fields_of, ok, refused, rest
from tests.handlers.item_helpers import create, get, sql


async def test_subscribers_get_new_comments_edits_and_deletes(
    client: Any, connect_socket: SocketFactory
) -> None:
    alice, bob, carol = [await signup(client) for _ in range(3)]
    post = await create(client, alice, body="live")
    sio = await connect_socket(bob.access_token)
    inbox = Inbox(sio, "comment.new", "item.updated")
    ack = await call(sio, "item.subscribe", {"item_id": post["id"]})
    assert ack["ok"], ack
    comment = await create(client, carol, "comment", "first!", parent_id=post["id"])

    def has_comment(name: str, data: dict[str, Any]) -> bool:
        return name == "comment.new" and any(c["id"] == comment["id"] for c in data["comments"])

    index = await inbox.wait_for(has_comment)
    [sent] = inbox.events[index][1]["comments"]
    assert sent["body"] == "first!" and sent["author_id"] == carol.id
    assert sent["parent_id"] == post["id"] and sent["author"]["username"] == carol.username
    await inbox.wait_for(lambda name, data: name == "item.updated"
                         and data.get("reply_count") == 1 and data["item_id"] == post["id"])
    # A reply reaches the post's subscribers too (its root).
    reply = await create(client, alice, "reply", "welcome", parent_id=comment["id"])
    await inbox.wait_for(lambda name, data: name == "comment.new"
                         and any(c["id"] == reply["id"] for c in data["comments"]))
    await ok(await rest(client, alice, "item.edit", {"item_id": post["id"], "body": "edited"}))
    await inbox.wait_for(lambda name, data: name == "item.updated"
                         and data.get("body") == "edited" and data.get("edited_at") is not None)
    await ok(await rest(client, alice, "item.delete", {"item_id": post["id"]}), 204)
    await inbox.wait_for(lambda name, data: name == "item.updated"
                         and data.get("deleted") is True and data.get("body") is None)


async def test_items_commands_over_a_socket(client: Any, connect_socket: SocketFactory) -> None:
    alice = await signup(client)
    sio = await connect_socket(alice.access_token)
    ack = await call(sio, "item.create", {"kind": "post", "body": "by socket",
                                          "idempotency_key": "s1"})
    assert ack["ok"], ack
    again = await call(sio, "item.create", {"kind": "post", "body": "by socket",
                                            "idempotency_key": "s1"})
    assert again["data"]["id"] == ack["data"]["id"]
    got = await call(sio, "item.get", {"item_id": ack["data"]["id"]})
    assert got["ok"] and got["data"]["body"] == "by socket"
    bad = await call(sio, "item.create", {"kind": "post", "body": "x", "nope": 1})
    assert bad["error"]["code"] == "invalid_input"


async def _story(database_url: str, author_id: str, expires_at: datetime) -> str:
    [row] = await sql(database_url, """INSERT INTO items (kind, author_id, body, expires_at)
                                       VALUES ('story', $1, 'story', $2) RETURNING id""",
                      uuid.UUID(author_id), expires_at)
    return str(row["id"])


async def test_expired_stories_are_gone_except_for_their_author(
    client: Any, database_url: str
) -> None:
    alice, bob = await signup(client), await signup(client)
    now = datetime.now(UTC)
    live = await _story(database_url, alice.id, now + timedelta(hours=1))
    expired = await _story(database_url, alice.id, now - timedelta(seconds=1))
    comment = await create(client, bob, "comment", "nice story", parent_id=live)
    assert comment["root_id"] == live
    await refused(await get(client, bob, expired), 404, "not_found")
    await refused(await rest(client, bob, "item.create", {
        "kind": "comment", "body": "late", "parent_id": expired}), 404, "not_found")
    assert (await ok(await get(client, alice, expired)))["kind"] == "story"
    # Once the story is gone, so is its thread for answering.
    await sql(database_url, "UPDATE items SET expires_at = now() WHERE id = $1", uuid.UUID(live))
    await refused(await rest(client, bob, "item.create", {
        "kind": "reply", "body": "late", "parent_id": comment["id"]}), 404, "not_found")


async def test_item_edit_leaves_other_kinds_alone(client: Any, database_url: str) -> None:
    alice, bob = await signup(client), await signup(client)
    post = await create(client, bob)
    [row] = await sql(database_url, """INSERT INTO items (kind, author_id, shared_id)
                                       VALUES ('share', $1, $2) RETURNING id""",
                      uuid.UUID(alice.id), uuid.UUID(post["id"]))
    error = await refused(await rest(client, alice, "item.edit", {
        "item_id": str(row["id"]), "body": "x"}), 403, "forbidden")
    assert error["details"]["reason"] == "kind_not_editable"
    share = await ok(await get(client, alice, str(row["id"])))
    assert share["shared_item"]["id"] == post["id"] and share["shared_item"]["body"] == "hi"
    # A share is not something to quote or to answer in a thread of its own.
    error = await refused(await rest(client, alice, "item.create", {
        "kind": "post", "body": "x", "quoted_id": str(row["id"])}), 400, "invalid_input")
    assert fields_of(error) == {"quoted_id"}


async def test_comments_answer_top_level_items_only(client: Any) -> None:
    alice, bob = await signup(client), await signup(client)
    notice = await create(client, alice, "notice", "n")
    answer = await create(client, bob, "notice", "a", parent_id=notice["id"])
    error = await refused(await rest(client, alice, "item.create", {
        "kind": "comment", "body": "x", "parent_id": answer["id"]}), 400, "invalid_input")
    assert error["details"]["fields"][0]["type"] == "wrong_parent_kind"
