"""hs_can_see(viewer, item): the one SQL visibility rule every item query filters with.

The rules are those of docs/social-model.md: the thread's root decides who may see it
(its visibility, its author's private account, its clique), blocks either way hide it,
a share needs both its own thread and the shared one to reach the viewer, and an author
always sees their own. Called directly, on rows inserted for each case.
"""

from __future__ import annotations

import uuid
from typing import Any

from storage.db import Database
from tests.storage.row_helpers import new_user, new_users


async def item(db: Database, author: uuid.UUID, kind: str = "post", **fields: Any) -> uuid.UUID:
    columns = ["kind", "author_id", *fields]
    values = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
    item_id: uuid.UUID = await db.pool.fetchval(
        f"INSERT INTO items ({', '.join(columns)}) VALUES ({values}) RETURNING id",
        kind, author, *fields.values())
    return item_id


async def comment(db: Database, author: uuid.UUID, on: uuid.UUID) -> uuid.UUID:
    """A public comment on a top-level item (the item is its thread's root)."""
    return await item(db, author, "comment", parent_id=on, root_id=on)


async def sees(db: Database, viewer: uuid.UUID | None, item_id: uuid.UUID) -> bool:
    seen = await db.pool.fetchval("SELECT hs_can_see($1, i) FROM items i WHERE i.id = $2",
                                  viewer, item_id)
    assert seen is not None, "no such item"
    return bool(seen)


async def follow(db: Database, follower: uuid.UUID, followee: uuid.UUID) -> None:
    await db.pool.execute("INSERT INTO follows (follower_id, followee_id) VALUES ($1, $2)",
                          follower, followee)


async def befriend(db: Database, a: uuid.UUID, b: uuid.UUID) -> None:
    """A friendship is stored both ways, as friend_request.accept stores it."""
    await db.pool.execute("INSERT INTO friendships (user_id, friend_id) VALUES ($1, $2), ($2, $1)",
                          a, b)


async def block(db: Database, blocker: uuid.UUID, blocked: uuid.UUID) -> None:
    await db.pool.execute("INSERT INTO user_blocks (blocker_id, blocked_id) VALUES ($1, $2)",
                          blocker, blocked)


async def clique(db: Database, owner: uuid.UUID, *, private: bool) -> uuid.UUID:
    clique_id: uuid.UUID = await db.pool.fetchval(
        "INSERT INTO cliques (name, is_private, created_by) VALUES ('c', $1, $2) RETURNING id",
        private, owner)
    await join(db, clique_id, owner, "owner")
    return clique_id


async def join(db: Database, clique_id: uuid.UUID, user: uuid.UUID, role: str = "member") -> None:
    await db.pool.execute(
        "INSERT INTO clique_members (clique_id, user_id, role) VALUES ($1, $2, $3)",
        clique_id, user, role)


async def test_public_item_of_a_public_account_reaches_everyone(db: Database) -> None:
    author, viewer = await new_user(db), await new_user(db)
    post = await item(db, author)
    assert await sees(db, viewer, post)
    assert await sees(db, None, post)  # signed out
    assert await sees(db, author, post)


async def test_a_private_item_is_for_its_author_only(db: Database) -> None:
    author, friend = await new_user(db), await new_user(db)
    await befriend(db, author, friend)
    await follow(db, friend, author)
    post = await item(db, author, visibility="private")
    assert await sees(db, author, post)
    assert not await sees(db, friend, post)
    assert not await sees(db, None, post)


async def test_followers_items_reach_followers_and_friends(db: Database) -> None:
    author, follower, friend, stranger = await new_users(db, 4)
    await follow(db, follower, author)
    await befriend(db, author, friend)
    post = await item(db, author, visibility="followers")
    assert await sees(db, follower, post)
    assert await sees(db, friend, post)
    assert not await sees(db, stranger, post)
    assert not await sees(db, None, post)
    # Following is one way: the author following someone does not let them in.
    await follow(db, author, stranger)
    assert not await sees(db, stranger, post)


async def test_friends_items_reach_friends_only(db: Database) -> None:
    author, follower, friend = await new_users(db, 3)
    await follow(db, follower, author)
    await befriend(db, author, friend)
    post = await item(db, author, visibility="friends")
    assert await sees(db, friend, post)
    assert not await sees(db, follower, post)
    assert not await sees(db, None, post)


async def test_close_friends_items_reach_the_authors_list_only(db: Database) -> None:
    author, close, friend = await new_users(db, 3)
    await befriend(db, author, close)
    await befriend(db, author, friend)
    await db.pool.execute("INSERT INTO close_friends (user_id, friend_id) VALUES ($1, $2)",
                          author, close)
    post = await item(db, author, visibility="close_friends")
    assert await sees(db, close, post)
    assert not await sees(db, friend, post)
    # The list is the author's: being on someone else's list does nothing here.
    await db.pool.execute("INSERT INTO close_friends (user_id, friend_id) VALUES ($1, $2)",
                          friend, author)
    assert not await sees(db, friend, post)


async def test_a_private_account_shows_public_items_to_followers_and_friends(db: Database) -> None:
    author = await new_user(db, private=True)
    follower, friend, stranger = await new_users(db, 3)
    await follow(db, follower, author)
    await befriend(db, author, friend)
    post = await item(db, author)
    assert await sees(db, follower, post)
    assert await sees(db, friend, post)
    assert not await sees(db, stranger, post)
    assert not await sees(db, None, post)
    assert await sees(db, author, post)


async def test_a_thread_follows_its_root(db: Database) -> None:
    author, follower, stranger = await new_users(db, 3)
    await follow(db, follower, author)
    post = await item(db, author, visibility="followers")
    # A public comment by the follower is still only for those who see the post.
    answer = await comment(db, follower, post)
    assert await sees(db, follower, answer)
    assert await sees(db, author, answer)
    assert not await sees(db, stranger, answer)
    assert not await sees(db, None, answer)


async def test_public_clique_items_reach_signed_in_non_members_but_not_banned_ones(
    db: Database,
) -> None:
    owner, member, outsider, banned = await new_users(db, 4)
    public = await clique(db, owner, private=False)
    await join(db, public, member)
    post = await item(db, member, clique_id=public)
    assert await sees(db, member, post)
    assert await sees(db, outsider, post)
    assert not await sees(db, None, post)  # clique items are never public to the signed out
    await db.pool.execute("INSERT INTO clique_bans (clique_id, user_id) VALUES ($1, $2)",
                          public, banned)
    assert not await sees(db, banned, post)


async def test_private_clique_items_reach_members_only_while_the_clique_lives(
    db: Database,
) -> None:
    owner, member, follower = await new_users(db, 3)
    await follow(db, follower, owner)
    private = await clique(db, owner, private=True)
    await join(db, private, member)
    post = await item(db, owner, clique_id=private)
    assert await sees(db, member, post)
    assert not await sees(db, follower, post)  # following the author is not membership
    await db.pool.execute("UPDATE cliques SET deleted_at = now() WHERE id = $1", private)
    assert not await sees(db, member, post)
    assert await sees(db, owner, post)  # an author always sees their own


async def test_a_block_either_way_hides_items_but_not_from_their_author(db: Database) -> None:
    author, blocked, blocker, bystander, commenter = await new_users(db, 5)
    post = await item(db, author)
    await block(db, author, blocked)
    await block(db, blocker, author)
    assert not await sees(db, blocked, post)
    assert not await sees(db, blocker, post)
    assert await sees(db, bystander, post)
    assert await sees(db, author, post)
    # A comment in an open thread is hidden from whoever is blocked with its own author,
    # who still sees the thread.
    answer = await comment(db, commenter, post)
    assert await sees(db, bystander, answer)
    await block(db, commenter, bystander)
    assert not await sees(db, bystander, answer)
    assert await sees(db, bystander, post)
    assert await sees(db, author, answer)


async def test_a_share_needs_both_threads(db: Database) -> None:
    author, sharer, other_sharer, viewer = await new_users(db, 4)
    original = await item(db, author)
    share = await item(db, sharer, "share", shared_id=original)
    assert await sees(db, viewer, share)
    assert await sees(db, None, share)
    # The share's own audience counts ...
    for_friends = await item(db, other_sharer, "share", shared_id=original, visibility="friends")
    assert not await sees(db, viewer, for_friends)
    assert await sees(db, viewer, original)
    # ... and so does the shared item's: its author blocking the viewer hides every share.
    await block(db, author, viewer)
    assert not await sees(db, viewer, share)
    assert await sees(db, sharer, share)
