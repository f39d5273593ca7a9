"""Who sees and who may answer or quote an item: visibility, blocks, quote policy, cliques,
and the mention and reply notifications that follow them."""

from __future__ import annotations

import uuid
from typing import Any

from tests.conftest import Account, signup
from tests.handlers.conversation_helpers import ok, refused, rest
from tests.handlers.item_helpers import (
    befriend,
    block,
    create,
    fetch,
    follow,
    get,
    make_private,
    notes,
    notified_after,
    sql,
)
from tests.handlers.social_helpers import until


async def _sees(client: Any, viewer: Account, item_id: str) -> bool:
    resp = await get(client, viewer, item_id)
    if resp.status == 404:
        return False
    await ok(resp)
    return True


async def test_visibility_levels(client: Any) -> None:
    author, stranger, follower, friend = [await signup(client) for _ in range(4)]
    await follow(client, follower, author)
    await befriend(client, friend, author)
    expected = {"public": (True, True, True), "followers": (False, True, True),
                "friends": (False, False, True), "private": (False, False, False)}
    for visibility, (by_stranger, by_follower, by_friend) in expected.items():
        post = await create(client, author, visibility=visibility)
        assert post["visibility"] == visibility
        assert await _sees(client, author, post["id"])
        seen = [await _sees(client, v, post["id"]) for v in (stranger, follower, friend)]
        assert seen == [by_stranger, by_follower, by_friend], visibility


async def test_comments_follow_their_root_audience(client: Any) -> None:
    author, friend, stranger = [await signup(client) for _ in range(3)]
    await befriend(client, friend, author)
    post = await create(client, author, visibility="friends")
    comment = await create(client, friend, "comment", "hi", parent_id=post["id"])
    reply = await create(client, author, "reply", "yo", parent_id=comment["id"])
    assert comment["visibility"] == "friends"
    for item in (post, comment, reply):
        assert await _sees(client, friend, item["id"])
        assert not await _sees(client, stranger, item["id"])
    await refused(await rest(client, stranger, "item.create", {
        "kind": "comment", "body": "x", "parent_id": post["id"]}), 404, "not_found")
    await refused(await rest(client, stranger, "item.reply.list", {"item_id": post["id"]}), 404,
                  "not_found")
    # Widening the root widens the whole thread.
    await ok(await rest(client, author, "item.edit", {"item_id": post["id"],
                                                      "visibility": "public"}))
    assert await _sees(client, stranger, reply["id"])
    error = await refused(await rest(client, author, "item.edit", {
        "item_id": reply["id"], "visibility": "private"}), 400, "invalid_input")
    assert error["details"]["fields"][0]["field"] == "visibility"


async def test_private_accounts_public_items_reach_followers_only(client: Any) -> None:
    author, stranger, follower = [await signup(client) for _ in range(3)]
    await follow(client, follower, author)
    await make_private(client, author)
    post = await create(client, author)
    assert await _sees(client, follower, post["id"])
    assert not await _sees(client, stranger, post["id"])
    # Asking to follow is not following: the request does not open the account.
    asked = await ok(await rest(client, stranger, "user.follow", {"user_id": author.id}))
    assert asked["status"] == "requested"
    assert not await _sees(client, stranger, post["id"])


async def test_blocks_hide_items_and_comments_both_ways(client: Any) -> None:
    alice, bob, carol = [await signup(client) for _ in range(3)]
    post = await create(client, alice)
    bobs = await create(client, bob, "comment", "from bob", parent_id=post["id"])
    carols = await create(client, carol, "comment", "from carol", parent_id=post["id"])
    await block(client, carol, bob)
    # Carol no longer sees Bob's comment in Alice's thread, nor Bob hers.
    page = await ok(await rest(client, carol, "item.reply.list", {"item_id": post["id"]}))
    assert [i["id"] for i in page["items"]] == [carols["id"]]
    page = await ok(await rest(client, bob, "item.reply.list", {"item_id": post["id"]}))
    assert [i["id"] for i in page["items"]] == [bobs["id"]]
    await refused(await get(client, carol, bobs["id"]), 404, "not_found")
    page = await ok(await rest(client, alice, "item.reply.list", {"item_id": post["id"]}))
    assert len(page["items"]) == 2
    await block(client, alice, bob)
    await refused(await get(client, bob, post["id"]), 404, "not_found")
    await refused(await rest(client, bob, "item.create", {
        "kind": "comment", "body": "x", "parent_id": post["id"]}), 404, "not_found")
    await refused(await rest(client, bob, "item.create", {
        "kind": "post", "body": "x", "quoted_id": post["id"]}), 404, "not_found")
    await refused(await rest(client, bob, "item.edit.list", {"item_id": post["id"]}), 404,
                  "not_found")


async def test_quote_policy(client: Any) -> None:
    author, stranger, follower, friend = [await signup(client) for _ in range(4)]
    await follow(client, follower, author)
    await befriend(client, friend, author)
    open_post = await create(client, author, body="quote me")
    followers_only = await create(client, author, quote_policy="followers")
    nobody = await create(client, author, quote_policy="nobody")

    async def quote(who: Account, item: dict[str, Any]) -> Any:
        return await rest(client, who, "item.create",
                          {"kind": "post", "body": "look", "quoted_id": item["id"]})

    quoted = await ok(await quote(stranger, open_post), 201)
    assert quoted["quoted_id"] == open_post["id"]
    assert quoted["quoted"]["id"] == open_post["id"] and quoted["quoted"]["body"] == "quote me"
    assert quoted["quoted"]["author"]["id"] == author.id
    notice = await ok(await rest(client, stranger, "item.create", {
        "kind": "notice", "body": "see", "quoted_id": open_post["id"]}), 201)
    assert notice["quoted"]["id"] == open_post["id"]
    assert (await fetch(client, author, open_post["id"]))["counts"]["quotes"] == 2
    error = await refused(await quote(stranger, followers_only), 403, "forbidden")
    assert error["details"]["reason"] == "quote_policy"
    await ok(await quote(follower, followers_only), 201)
    await ok(await quote(friend, followers_only), 201)
    for who in (stranger, follower, friend):
        await refused(await quote(who, nobody), 403, "forbidden")
    await ok(await quote(author, nobody), 201)
    hidden = await create(client, author, visibility="friends")
    await refused(await quote(stranger, hidden), 404, "not_found")
    await refused(await rest(client, stranger, "item.create", {
        "kind": "post", "body": "x", "quoted_id": str(uuid.uuid4())}), 404, "not_found")


async def test_embedded_quote_follows_its_own_visibility_and_deletion(
    client: Any, database_url: str
) -> None:
    author, friend, stranger = [await signup(client) for _ in range(3)]
    await befriend(client, friend, author)
    original = await create(client, author, body="original")
    quote = await create(client, friend, body="quoting", quoted_id=original["id"])
    # The original narrows to friends: the stranger still sees the quote, not what it quotes.
    await ok(await rest(client, author, "item.edit", {"item_id": original["id"],
                                                      "visibility": "friends"}))
    seen = await fetch(client, stranger, quote["id"])
    assert seen["quoted"] == {"id": original["id"], "unavailable": True}
    assert (await fetch(client, friend, quote["id"]))["quoted"]["body"] == "original"
    await ok(await rest(client, author, "item.delete", {"item_id": original["id"]}), 204)
    gone = (await fetch(client, friend, quote["id"]))["quoted"]
    assert gone["id"] == original["id"] and gone["deleted"] is True and gone["body"] is None
    await sql(database_url, "UPDATE items SET quote_detached = true WHERE id = $1",
              uuid.UUID(quote["id"]))
    detached = await fetch(client, friend, quote["id"])
    assert detached["quoted"] is None and detached["quote_detached"] is True
    # Nothing to quote any more.
    await refused(await rest(client, friend, "item.create", {
        "kind": "post", "body": "x", "quoted_id": original["id"]}), 409, "conflict")


async def test_quote_count_goes_down_when_the_quote_is_deleted(client: Any) -> None:
    alice, bob = await signup(client), await signup(client)
    post = await create(client, alice)
    quote = await create(client, bob, body="q", quoted_id=post["id"])
    assert (await fetch(client, alice, post["id"]))["counts"]["quotes"] == 1
    await ok(await rest(client, bob, "item.delete", {"item_id": quote["id"]}), 204)
    await ok(await rest(client, bob, "item.delete", {"item_id": quote["id"]}), 204)
    assert (await fetch(client, alice, post["id"]))["counts"]["quotes"] == 0
    assert (await fetch(client, bob, quote["id"]))["quoted"] is None


async def _clique(database_url: str, *, private: bool, members: list[Account]) -> str:
    [row] = await sql(database_url, "INSERT INTO cliques (name, is_private) VALUES ('c', $1) "
                                    "RETURNING id", private)
    for member in members:
        await sql(database_url, "INSERT INTO clique_members (clique_id, user_id) VALUES ($1, $2)",
                  row["id"], uuid.UUID(member.id))
    return str(row["id"])


async def test_clique_posts_need_membership(client: Any, database_url: str) -> None:
    member, outsider, banned = [await signup(client) for _ in range(3)]
    public = await _clique(database_url, private=False, members=[member, banned])
    private = await _clique(database_url, private=True, members=[member])
    await sql(database_url, "INSERT INTO clique_bans (clique_id, user_id) VALUES ($1, $2)",
              uuid.UUID(public), uuid.UUID(banned.id))
    post = await create(client, member, clique_id=public)
    assert post["clique_id"] == public
    for who in (outsider, banned):
        await refused(await rest(client, who, "item.create", {
            "kind": "post", "body": "x", "clique_id": public}), 404, "not_found")
    await refused(await rest(client, member, "item.create", {
        "kind": "post", "body": "x", "clique_id": str(uuid.uuid4())}), 404, "not_found")
    # A public clique's post is readable by outsiders, answerable by members only.
    assert await _sees(client, outsider, post["id"])
    assert not await _sees(client, banned, post["id"])
    error = await refused(await rest(client, outsider, "item.create", {
        "kind": "comment", "body": "x", "parent_id": post["id"]}), 403, "forbidden")
    assert error["details"]["reason"] == "not_member"
    comment = await create(client, member, "comment", "in", parent_id=post["id"])
    assert comment["clique_id"] == public
    secret = await create(client, member, clique_id=private)
    assert not await _sees(client, outsider, secret["id"])


async def test_mentions_notify_those_who_can_see(client: Any) -> None:
    author, friend, stranger = [await signup(client) for _ in range(3)]
    await befriend(client, friend, author)
    post = await create(client, author, visibility="friends",
                        body=f"hi @{friend.username} and @{stranger.username} and "
                             f"@{author.username}")
    assert sorted(post["mentions"]) == sorted([friend.id, stranger.id, author.id])
    [note] = await until(lambda: notes(client, friend, "mention"))
    assert note["subject"] == {"type": "item", "id": post["id"]}
    assert note["actor_ids"] == [author.id] and "mentioned you" in note["title"]
    # The stranger may not see the post: no notification. A public post reaches them.
    public = await create(client, author, body=f"@{stranger.username}")
    [note] = await until(lambda: notes(client, stranger, "mention"))
    assert note["subject"]["id"] == public["id"]
    assert await notes(client, author, "mention") == []


async def test_answers_notify_the_parent_author(client: Any) -> None:
    alice, bob, carol = [await signup(client) for _ in range(3)]
    post = await create(client, alice)
    comment = await create(client, bob, "comment", "first", parent_id=post["id"])
    [note] = await until(lambda: notes(client, alice, "reply"))
    assert note["subject"] == {"type": "item", "id": comment["id"]}
    assert note["data"]["parent_id"] == post["id"]
    await block(client, bob, carol)
    # Bob blocked Carol: his comment is hidden from her, so she cannot answer it.
    await refused(await rest(client, carol, "item.create", {
        "kind": "reply", "body": "x", "parent_id": comment["id"]}), 404, "not_found")
    await create(client, alice, "reply", "to bob", parent_id=comment["id"])
    [note] = await until(lambda: notes(client, bob, "reply"))
    assert note["actor_ids"] == [alice.id] and note["data"]["parent_id"] == comment["id"]
    carol_comment = await create(client, carol, "comment", "carol", parent_id=post["id"])
    await create(client, alice, "reply", f"@{carol.username} hi", parent_id=carol_comment["id"])
    # Carol is mentioned in a reply to her comment: one mention, no second reply notification.
    [mention] = await until(lambda: notes(client, carol, "mention"))
    assert await notes(client, carol, "reply") == []
    assert mention["actor_ids"] == [alice.id]


async def test_a_quote_notifies_the_quoted_author_once(client: Any) -> None:
    author, fan, other = await signup(client), await signup(client), await signup(client)
    post = await create(client, author, body="quote me")
    quote = await create(client, fan, "notice", "so true", quoted_id=post["id"])
    [note] = await until(lambda: notes(client, author, "quote"))
    assert note["subject"] == {"type": "item", "id": quote["id"]}
    assert note["data"]["quoted_id"] == post["id"] and note["actor_ids"] == [fan.id]
    assert note["title"] == f"{fan.username} quoted your post"
    # A quote that also mentions the author is one mention, not a mention and a quote.
    await create(client, other, "notice", f"@{author.username} look", quoted_id=post["id"])
    await until(lambda: notes(client, author, "mention"))
    assert len(await notes(client, author, "quote")) == 1
    # Quoting your own item tells nobody; a quote the author may not see tells them nothing.
    await create(client, author, "notice", "me again", quoted_id=post["id"])
    await create(client, other, "post", "just for me", quoted_id=post["id"], visibility="private")
    await notified_after(client, author, other)
    assert len(await notes(client, author, "quote")) == 1
