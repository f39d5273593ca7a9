"""item.create / get / replies / edit / delete over REST against a real server."""

from __future__ import annotations

from typing import Any

from tests.conftest import signup
from tests.handlers.conversation_helpers import ok, refused, rest
from tests.handlers.item_helpers import create, fetch, get


async def test_post_comment_reply_and_counts(client: Any) -> None:
    alice, bob = await signup(client), await signup(client)
    post = await create(client, alice, body="hello #World @" + bob.username)
    assert post["kind"] == "post" and post["author"]["id"] == alice.id
    assert post["tags"] == ["world"] and post["mentions"] == [bob.id]
    comment = await create(client, bob, "comment", "nice", parent_id=post["id"])
    assert comment["root_id"] == post["id"] and comment["parent_id"] == post["id"]
    reply = await create(client, alice, "reply", "thanks", parent_id=comment["id"])
    assert reply["root_id"] == post["id"] and reply["parent_id"] == comment["id"]
    assert (await fetch(client, bob, post["id"]))["counts"]["replies"] == 1
    assert (await fetch(client, bob, comment["id"]))["counts"]["replies"] == 1
    page = await ok(await rest(client, bob, "item.replies", {"item_id": post["id"]}))
    assert [i["id"] for i in page["items"]] == [comment["id"]]
    await refused(await get(client, bob, "00000000-0000-0000-0000-000000000000"), 404, "not_found")
