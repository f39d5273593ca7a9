"""Stories on the content engine's paths: one reaction path with live item.updated, and
story.reply idempotent by its (required) client_id, as message.send."""

from __future__ import annotations

from typing import Any

from config import Settings
from tests.conftest import SocketFactory, signup
from tests.handlers.conversation_helpers import Inbox, call, ok, rest
from tests.handlers.story_helpers import follow, post_story

Client = Any


async def test_a_story_reaction_publishes_item_updated_to_subscribers(
    client: Client, connect_socket: SocketFactory, settings: Settings
) -> None:
    author, fan = await signup(client), await signup(client)
    await follow(settings, fan, author)
    story = await post_story(client, author)
    sio = await connect_socket(author.access_token)
    inbox = Inbox(sio, "item.updated")
    ack = await call(sio, "item.subscribe", {"item_id": story["id"]})
    assert ack["ok"], ack

    reacted = await ok(await rest(client, fan, "story.react",
                                  {"story_id": story["id"], "kind": "love"}))
    assert reacted == {"story_id": story["id"], "my_reaction": "love", "changed": True}
    await inbox.wait_for(lambda name, data: data.get("reactions") == {"love": 1}
                         and data["reaction_count"] == 1 and data["item_id"] == story["id"])
    # The same table and counters as item reactions: item.reaction.list lists it.
    listed = await ok(await rest(client, author, "item.reaction.list", {"item_id": story["id"]}))
    assert [(r["user"]["id"], r["kind"]) for r in listed["reactions"]] == [(fan.id, "love")]

    undone = await ok(await rest(client, fan, "story.unreact", {"story_id": story["id"]}))
    assert undone == {"story_id": story["id"], "my_reaction": None, "changed": True}
    await inbox.wait_for(lambda name, data: data.get("reaction_count") == 0
                         and data["reactions"] == {})
    again = await ok(await rest(client, fan, "story.unreact", {"story_id": story["id"]}))
    assert again["changed"] is False


async def test_a_retried_story_reply_makes_one_message(client: Client, settings: Settings) -> None:
    author, fan = await signup(client), await signup(client)
    await follow(settings, fan, author)
    story = await post_story(client, author)
    payload = {"story_id": story["id"], "body": "love it", "client_id": "reply-1"}
    first = await ok(await rest(client, fan, "story.reply", payload), 201)
    retry = await ok(await rest(client, fan, "story.reply", payload), 201)
    assert retry["id"] == first["id"]
    history = await ok(await rest(client, author, "message.list",
                                  {"conversation_id": first["conversation_id"]}))
    assert [m["id"] for m in history["messages"]] == [first["id"]]
