"""A story's comments expire with it: gone for everyone but the story's author and their own."""

from __future__ import annotations

from typing import Any

from config import Settings
from tests.conftest import signup
from tests.handlers.conversation_helpers import ok, refused, rest
from tests.handlers.story_helpers import follow, install_clock, post_story


async def test_comments_of_an_expired_story_are_not_found(client: Any, settings: Settings) -> None:
    author, fan, other = await signup(client), await signup(client), await signup(client)
    await follow(settings, fan, author)
    await follow(settings, other, author)
    clock = install_clock(client)
    story = await post_story(client, author, allow_comments=True)
    comment = await ok(await rest(client, fan, "item.create", {
        "kind": "comment", "parent_id": story["id"], "body": "lovely #sunsetstory"}), 201)
    reply = await ok(await rest(client, fan, "item.create", {
        "kind": "reply", "parent_id": comment["id"], "body": "agreed"}), 201)
    await ok(await rest(client, other, "item.save", {"item_id": comment["id"]}))
    await ok(await rest(client, other, "item.get", {"item_id": comment["id"]}))

    clock.advance(hours=24, seconds=1)
    for name, payload in [
        ("item.get", {"item_id": comment["id"]}),
        ("item.get", {"item_id": reply["id"]}),
        ("item.reply.list", {"item_id": comment["id"]}),
        ("item.comment.list", {"item_id": comment["id"]}),
        ("item.react", {"item_id": comment["id"], "kind": "like"}),
        ("item.save", {"item_id": comment["id"]}),
    ]:
        await refused(await rest(client, other, name, payload), 404, "not_found")
    tagged = await ok(await rest(client, other, "feed.list_tag", {"tag": "sunsetstory"}))
    assert tagged["items"] == []
    saved = await ok(await rest(client, other, "feed.list_saved", {}))
    assert saved["items"] == []
    # The story's author still reads its thread, and a comment's author their comment
    # (so they can still delete it).
    await ok(await rest(client, author, "item.get", {"item_id": reply["id"]}))
    await ok(await rest(client, author, "item.reply.list", {"item_id": comment["id"]}))
    await ok(await rest(client, fan, "item.get", {"item_id": comment["id"]}))
    await ok(await rest(client, fan, "item.delete", {"item_id": comment["id"]}), 204)
