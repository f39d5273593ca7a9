"""Feeds over REST: who sees what in the home, user, clique, tag, comment and saved lists."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest

from config import Rates, Settings
from tests.conftest import AppFactory, signup
from tests.handlers.conversation_helpers import ok, refused, rest
from tests.handlers.feed_helpers import Client, clique, ids, join, page, put, relate


@pytest.fixture
async def client(make_client: AppFactory, settings: Settings) -> Any:
    """The app, with room for the many sign-ups these tests make from one address."""
    return await make_client(rates=Rates(signup=(1000, 3600)))


async def test_home_shows_followed_friends_own_and_audiences(client: Client, db: Any) -> None:
    author, follower, friend, close, stranger = [await signup(client) for _ in range(5)]
    await relate(client, "follows", follower, author)
    await relate(client, "friendships", friend, author)
    await relate(client, "follows", close, author)
    await relate(client, "close_friends", author, close)
    public = await put(db, author, 1)
    followers = await put(db, author, 2, visibility="followers")
    friends = await put(db, author, 3, visibility="friends")
    close_only = await put(db, author, 4, visibility="close_friends")
    private = await put(db, author, 5, visibility="private")
    own = await put(db, follower, 6)
    assert await ids(client, follower, "feed.list_home") == [own, followers, public]
    assert await ids(client, friend, "feed.list_home") == [friends, followers, public]
    assert await ids(client, close, "feed.list_home") == [close_only, followers, public]
    assert await ids(client, author, "feed.list_home") == [private, close_only, friends, followers, public]
    assert await ids(client, stranger, "feed.list_home") == []
    # A user's own list: what each viewer may see, whether or not they follow.
    assert await ids(client, stranger, "feed.list_user", user_id=author.id) == [public]
    assert await ids(client, follower, "feed.list_user", user_id=author.id) == [followers, public]
    body = await page(client, follower, "feed.list_home")
    assert body["items"][1]["author"]["id"] == author.id and body["items"][1]["body"] == "post at 2"


async def test_private_account_reaches_followers_and_friends_only(client: Client, db: Any) -> None:
    author, follower, friend, stranger = [await signup(client) for _ in range(4)]
    await relate(client, "follows", follower, author)
    await relate(client, "friendships", friend, author)
    await db.execute("UPDATE users SET is_private = true WHERE id = $1", uuid.UUID(author.id))
    post = await put(db, author, 1)
    assert await ids(client, follower, "feed.list_home") == [post]
    assert await ids(client, friend, "feed.list_user", user_id=author.id) == [post]
    assert await ids(client, stranger, "feed.list_user", user_id=author.id) == []


@pytest.mark.parametrize("direction", ["viewer_blocks", "author_blocks"])
async def test_blocks_hide_items_both_ways(client: Client, db: Any, direction: str) -> None:
    author, viewer, other = [await signup(client) for _ in range(3)]
    await relate(client, "follows", viewer, author)
    await relate(client, "follows", viewer, other)
    post = await put(db, author, 1)
    mine = await put(db, other, 2)
    comment = await put(db, author, 3, kind="comment", parent=mine)
    own_comment = await put(db, viewer, 4, kind="comment", parent=mine)
    tag = f"t{uuid.uuid4().hex[:10]}"
    tagged = await put(db, author, 5, tags=(tag,))
    assert await ids(client, viewer, "feed.list_home") == [tagged, mine, post]
    blocker, blocked = (viewer, author) if direction == "viewer_blocks" else (author, viewer)
    await ok(await rest(client, blocker, "user.block", {"user_id": blocked.id}), 204)
    assert await ids(client, viewer, "feed.list_home") == [mine]
    assert await ids(client, viewer, "feed.list_user", user_id=author.id) == []
    assert await ids(client, author, "feed.list_user", user_id=viewer.id) == []
    assert await ids(client, viewer, "feed.list_tag", tag=tag) == []
    # Inside a third person's thread, each side's comments are hidden from the other.
    assert await ids(client, viewer, "item.comment.list", item_id=mine) == [own_comment]
    assert await ids(client, author, "item.comment.list", item_id=mine) == [comment]
    await refused(await rest(client, viewer, "item.comment.list", {"item_id": post}), 404, "not_found")


async def test_mute_hides_from_home_not_from_the_profile(client: Client, db: Any) -> None:
    viewer, loud, paused, expired = [await signup(client) for _ in range(4)]
    tag = f"t{uuid.uuid4().hex[:10]}"
    posts = {}
    for n, user in enumerate((loud, paused, expired)):
        await relate(client, "follows", viewer, user)
        posts[user.id] = await put(db, user, n, tags=(tag,))
    now = datetime.now(UTC)
    for user, until in ((loud, None), (paused, now + timedelta(days=1)),
                        (expired, now - timedelta(minutes=1))):
        await db.execute("INSERT INTO user_mutes (muter_id, muted_id, until) VALUES ($1, $2, $3)",
                         uuid.UUID(viewer.id), uuid.UUID(user.id), until)
    assert await ids(client, viewer, "feed.list_home") == [posts[expired.id]]
    assert await ids(client, viewer, "feed.list_tag", tag=tag) == [posts[expired.id]]
    for user in (loud, paused):
        assert await ids(client, viewer, "feed.list_user", user_id=user.id) == [posts[user.id]]


async def test_home_leaves_out_comments_stories_tombstones_and_expired(client: Client, db: Any) -> None:
    viewer, author = await signup(client), await signup(client)
    await relate(client, "follows", viewer, author)
    now = datetime.now(UTC)
    post = await put(db, author, 1)
    notice = await put(db, author, 2, kind="notice")
    slide = await put(db, author, 3, kind="slide")
    share = await put(db, author, 4, kind="share", shared=post)
    await put(db, author, 5, kind="comment", parent=post)
    await put(db, author, 6, kind="story", expires=now + timedelta(hours=1))
    gone = await put(db, author, 7, deleted=True)
    await put(db, author, 8, kind="notice", expires=now - timedelta(seconds=1))
    shown = [share, slide, notice, post]
    assert await ids(client, viewer, "feed.list_home") == shown
    assert await ids(client, viewer, "feed.list_user", user_id=author.id) == shown
    assert await ids(client, viewer, "feed.list_user", user_id=author.id, kind="notice") == [notice]
    body = await page(client, viewer, "feed.list_home")
    assert body["items"][0]["shared_item"]["id"] == post
    # A deleted post's comments stay listed (under its tombstone).
    reply = await put(db, viewer, 9, kind="comment", parent=gone)
    assert await ids(client, viewer, "item.comment.list", item_id=gone) == [reply]


async def test_a_share_of_a_hidden_item_is_hidden(client: Client, db: Any) -> None:
    viewer, sharer, author = [await signup(client) for _ in range(3)]
    await relate(client, "follows", viewer, sharer)
    await relate(client, "friendships", sharer, author)
    secret = await put(db, author, 1, visibility="friends")
    await put(db, sharer, 2, kind="share", shared=secret)
    visible = await put(db, sharer, 3)
    assert await ids(client, viewer, "feed.list_home") == [visible]


async def test_cliques_in_home_and_clique_lists(client: Client, db: Any) -> None:
    owner, member, follower, outsider, banned = [await signup(client) for _ in range(5)]
    open_c = await clique(db, owner)
    closed = await clique(db, owner, private=True)
    for c in (open_c, closed):
        await join(db, c, member)
    await db.execute("INSERT INTO clique_followers (clique_id, user_id) VALUES ($1, $2)",
                     uuid.UUID(open_c), uuid.UUID(follower.id))
    await db.execute("INSERT INTO clique_bans (clique_id, user_id) VALUES ($1, $2)",
                     uuid.UUID(open_c), uuid.UUID(banned.id))
    await relate(client, "follows", banned, owner)
    await relate(client, "follows", outsider, owner)
    in_open = await put(db, owner, 1, clique=open_c)
    in_closed = await put(db, owner, 2, clique=closed)
    outside = await put(db, owner, 3)
    assert await ids(client, member, "feed.list_home") == [in_closed, in_open]
    assert await ids(client, follower, "feed.list_home") == [in_open]
    # Following the author brings their public-clique posts, not their private-clique ones.
    assert await ids(client, outsider, "feed.list_home") == [outside, in_open]
    assert await ids(client, banned, "feed.list_home") == [outside]
    assert await ids(client, outsider, "feed.list_clique", clique_id=open_c) == [in_open]
    assert await ids(client, member, "feed.list_clique", clique_id=closed) == [in_closed]
    for who, c in ((outsider, closed), (follower, closed), (banned, open_c)):
        await refused(await rest(client, who, "feed.list_clique", {"clique_id": c}), 404, "not_found")
    await db.execute("UPDATE cliques SET deleted_at = now() WHERE id = $1", uuid.UUID(open_c))
    await refused(await rest(client, member, "feed.list_clique", {"clique_id": open_c}), 404, "not_found")
    assert await ids(client, follower, "feed.list_home") == []
    await refused(await rest(client, member, "feed.list_clique", {"clique_id": str(uuid.uuid4())}),
                  404, "not_found")


async def test_comments_oldest_first_and_visible_only(client: Client, db: Any) -> None:
    author, friend, stranger = [await signup(client) for _ in range(3)]
    await relate(client, "friendships", friend, author)
    public = await put(db, author, 1)
    c1 = await put(db, friend, 3, kind="comment", parent=public)
    c2 = await put(db, author, 2, kind="comment", parent=public)
    await put(db, friend, 4, kind="reply", parent=c1, root=public)  # not a direct child
    assert await ids(client, stranger, "item.comment.list", item_id=public) == [c2, c1]
    hidden = await put(db, author, 5, visibility="friends")
    c3 = await put(db, friend, 6, kind="comment", parent=hidden)
    assert await ids(client, friend, "item.comment.list", item_id=hidden) == [c3]
    await refused(await rest(client, stranger, "item.comment.list", {"item_id": hidden}), 404,
                  "not_found")
    await refused(await rest(client, stranger, "item.comment.list", {"item_id": str(uuid.uuid4())}),
                  404, "not_found")


async def test_tag_list_from_created_items(client: Client, db: Any) -> None:
    author, viewer = await signup(client), await signup(client)
    tag = f"t{uuid.uuid4().hex[:10]}"
    first = await ok(await rest(client, author, "item.create",
                                {"kind": "post", "body": f"hello #{tag}"}), 201)
    second = await ok(await rest(client, author, "item.create",
                                 {"kind": "post", "body": f"again #{tag.upper()} and #other"}), 201)
    await ok(await rest(client, author, "item.create",
                        {"kind": "post", "body": f"only friends #{tag}", "visibility": "friends"}),
             201)
    expected = [second["id"], first["id"]]
    for spelled in (tag, f"#{tag}", tag.upper(), f"#{tag.upper()}"):
        # In a path, '#' is spelled %23 (a bare '#' starts the URL's fragment).
        resp = await client.get("/v1/tags/" + quote(spelled, safe=""), headers=viewer.headers)
        assert [i["id"] for i in (await ok(resp))["items"]] == expected
    await ok(await rest(client, author, "item.delete", {"item_id": second["id"]}), 204)
    assert await ids(client, viewer, "feed.list_tag", tag=tag) == [first["id"]]


@pytest.mark.parametrize("bad", ["a-b", "#", "##x", "x y", "cats\n", "é" * 65, "a" * 66])
async def test_tag_must_be_a_tag(client: Client, bad: str) -> None:
    viewer = await signup(client)
    resp = await client.get("/v1/tags/" + quote(bad, safe=""), headers=viewer.headers)
    error = await refused(resp, 400, "invalid_input")
    [field] = error["details"]["fields"]
    assert field["field"] == "tag"
    assert field["type"] == ("string_too_long" if len(bad) > 65 else "tag_invalid")


async def test_saved_newest_first_and_still_visible(client: Client, db: Any) -> None:
    viewer, author, other = [await signup(client) for _ in range(3)]
    first = await put(db, author, 1)
    second = await put(db, other, 2)
    for item_id in (second, first):
        await ok(await rest(client, viewer, "item.save", {"item_id": item_id}))
    assert await ids(client, viewer, "feed.list_saved") == [first, second]
    assert await ids(client, author, "feed.list_saved") == []
    await ok(await rest(client, author, "user.block", {"user_id": viewer.id}), 204)
    assert await ids(client, viewer, "feed.list_saved") == [second]


async def test_unknown_user_and_socket_twin(client: Client, db: Any, connect_socket: Any) -> None:
    viewer, author = await signup(client), await signup(client)
    await refused(await rest(client, viewer, "feed.list_user", {"user_id": str(uuid.uuid4())}), 404,
                  "not_found")
    await relate(client, "follows", viewer, author)
    post = await put(db, author, 1)
    sio = await connect_socket(viewer.access_token)
    reply = await sio.call("feed.list_home", {"limit": 5}, timeout=10)
    assert reply["ok"] and [i["id"] for i in reply["data"]["items"]] == [post]
    assert reply["data"]["next_cursor"] is None
    reply = await sio.call("feed.list_home", {"limit": 0}, timeout=10)
    assert not reply["ok"] and reply["error"]["code"] == "invalid_input"
