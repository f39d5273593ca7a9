"""Shares, saves and quote detach over REST: idempotency, counters, rules, visibility."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from config import Rates, Settings
from handlers.pagination import Position
from server.resources import SERVICES
from storage import engagement
from tests.conftest import AppFactory, signup
from tests.handlers.conversation_helpers import fields_of, ok, refused, rest
from tests.handlers.item_helpers import block, create, fetch, notes, notified_after, sql
from tests.handlers.social_helpers import until

MISSING = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
async def client(make_client: AppFactory, settings: Settings) -> Any:
    """The app, with room for many sign-ups from one address (see test_engagement.py)."""
    return await make_client(rates=Rates(signup=(500, 3600)))


async def share(client: Any, account: Any, item_id: str, **fields: Any) -> Any:
    return await rest(client, account, "item.share", {"item_id": item_id, **fields})


async def test_share_is_once_per_user_and_unshare_deletes_it(client: Any, database_url: str) -> None:
    alice, bob, carol = await signup(client), await signup(client), await signup(client)
    post = await create(client, alice, body="worth sharing")
    made = await ok(await share(client, bob, post["id"]))
    assert made["created"] is True and made["share_count"] == 1
    mine = made["share"]
    assert mine["kind"] == "share" and mine["author"]["id"] == bob.id
    assert mine["shared_id"] == post["id"] and mine["visibility"] == "public"
    assert mine["shared_item"]["id"] == post["id"] and mine["shared_item"]["shared"] is True
    again = await ok(await share(client, bob, post["id"]))
    assert again["created"] is False and again["share"]["id"] == mine["id"]
    assert again["share_count"] == 1
    # Sharing a share shares its original.
    via = await ok(await share(client, carol, mine["id"]))
    assert via["share"]["shared_id"] == post["id"] and via["share_count"] == 2
    seen = await fetch(client, carol, post["id"])
    assert seen["counts"]["shares"] == 2 and seen["shared"] is True
    assert (await fetch(client, carol, mine["id"]))["shared_item"]["id"] == post["id"]
    # Undo by the original's id, or by the share's own id.
    gone = await ok(await rest(client, bob, "item.unshare", {"item_id": post["id"]}))
    assert gone == {"item_id": post["id"], "shared": False, "removed": True, "share_count": 1}
    assert await sql(database_url, "SELECT 1 FROM items WHERE id = $1", mine["id"]) == []
    await refused(await rest(client, bob, "item.get", {"item_id": mine["id"]}), 404, "not_found")
    none = await ok(await rest(client, bob, "item.unshare", {"item_id": post["id"]}))
    assert none["removed"] is False and none["share_count"] == 1
    gone = await ok(await rest(client, carol, "item.unshare", {"item_id": via["share"]["id"]}))
    assert gone["removed"] is True and gone["item_id"] == post["id"] and gone["share_count"] == 0
    # Shared again after undoing: a new share.
    anew = await ok(await share(client, bob, post["id"], visibility="friends"))
    assert anew["created"] is True and anew["share"]["id"] != mine["id"]
    assert anew["share"]["visibility"] == "friends"


async def test_sharing_notifies_the_author(client: Any) -> None:
    alice, bob = await signup(client), await signup(client)
    post = await create(client, alice)
    own = await ok(await share(client, alice, post["id"]))  # one's own post: allowed, no note
    assert own["created"] is True
    await ok(await share(client, bob, post["id"]))
    await ok(await rest(client, bob, "item.unshare", {"item_id": post["id"]}))
    await ok(await share(client, bob, post["id"]))  # same source event: not notified twice
    [note] = await until(lambda: notes(client, alice, "share"))
    assert note["subject"] == {"type": "item", "id": post["id"]}
    assert note["actor_ids"] == [bob.id]
    assert note["title"] == f"{bob.username} shared your post"
    await notified_after(client, alice, bob)
    [note] = await notes(client, alice, "share")
    assert note["count"] == 1
    assert await notes(client, alice, "reaction") == []


async def test_what_may_be_shared(client: Any) -> None:
    alice, bob = await signup(client), await signup(client)
    post = await create(client, alice)
    comment = await create(client, bob, "comment", "hi", parent_id=post["id"])
    private = await create(client, alice, visibility="private")
    deleted = await create(client, alice)
    await ok(await rest(client, alice, "item.delete", {"item_id": deleted["id"]}), 204)
    clique = await ok(await rest(client, alice, "clique.create",
                                 {"name": "inner circle", "is_private": True}), 201)
    in_clique = await create(client, alice, clique_id=clique["id"])
    for account, item, reason in [(bob, comment, "not_shareable"), (alice, private, "private"),
                                  (alice, in_clique, "private_clique")]:
        error = await refused(await share(client, account, item["id"]), 403, "forbidden")
        assert error["details"]["reason"] == reason
    error = await refused(await share(client, bob, deleted["id"]), 409, "conflict")
    assert error["details"]["reason"] == "deleted"
    # Invisible items are not found, whoever's they are.
    for item in (private, in_clique):
        await refused(await share(client, bob, item["id"]), 404, "not_found")
    await refused(await share(client, bob, MISSING), 404, "not_found")
    await refused(await rest(client, bob, "item.unshare", {"item_id": MISSING}), 404, "not_found")
    await refused(await rest(client, bob, "item.unshare", {"item_id": private["id"]}), 404,
                  "not_found")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"item_id": post["id"], "visibility": "everyone"}, "visibility"),
        ({"item_id": "x"}, "item_id"), ({"item_id": post["id"], "extra": True}, "extra")]
    for payload, field in cases:
        error = await refused(await rest(client, bob, "item.share", payload), 400, "invalid_input")
        assert field in fields_of(error)


async def test_concurrent_shares_count_exactly(client: Any, database_url: str) -> None:
    alice = await signup(client)
    post = await create(client, alice)
    users = [await signup(client) for _ in range(20)]
    answers = await asyncio.gather(*(share(client, u, post["id"]) for u in users))
    assert all(a.status == 200 for a in answers)
    # One user sharing five times at once makes one share.
    repeat = await asyncio.gather(*(share(client, users[0], post["id"]) for _ in range(5)))
    bodies = [await a.json() for a in repeat]
    assert {b["share"]["id"] for b in bodies} == {(await answers[0].json())["share"]["id"]}
    [row] = await sql(database_url, """SELECT share_count,
        (SELECT count(*) FROM items s WHERE s.kind = 'share' AND s.shared_id = i.id) AS n
        FROM items i WHERE i.id = $1""", post["id"])
    assert row["share_count"] == 20 and row["n"] == 20
    undo = await asyncio.gather(*(rest(client, u, "item.unshare", {"item_id": post["id"]})
                                  for u in users[:10]))
    assert all(a.status == 200 for a in undo)
    [row] = await sql(database_url, "SELECT share_count FROM items WHERE id = $1", post["id"])
    assert row["share_count"] == 10


async def test_save_and_unsave_are_idempotent_and_private(client: Any) -> None:
    alice, bob = await signup(client), await signup(client)
    post = await create(client, alice)
    first = await ok(await rest(client, bob, "item.save", {"item_id": post["id"]}))
    assert first["saved"] is True and first["saved_at"] and first["item_id"] == post["id"]
    again = await ok(await rest(client, bob, "item.save", {"item_id": post["id"]}))
    assert again == first
    assert (await fetch(client, bob, post["id"]))["saved"] is True
    assert (await fetch(client, alice, post["id"]))["saved"] is False
    for _ in range(2):
        gone = await ok(await rest(client, bob, "item.unsave", {"item_id": post["id"]}))
        assert gone == {"item_id": post["id"], "saved": False, "saved_at": None}
    private = await create(client, alice, visibility="private")
    for name in ("item.save", "item.unsave"):
        await refused(await rest(client, bob, name, {"item_id": private["id"]}), 404, "not_found")
        await refused(await rest(client, bob, name, {"item_id": MISSING}), 404, "not_found")
        error = await refused(await rest(client, bob, name, {"item_id": "nope"}), 400,
                              "invalid_input")
        assert fields_of(error) == {"item_id"}
    await ok(await rest(client, alice, "item.delete", {"item_id": private["id"]}), 204)
    error = await refused(await rest(client, alice, "item.save", {"item_id": private["id"]}),
                          409, "conflict")
    assert error["details"]["reason"] == "deleted"


async def test_saved_page_lists_what_the_viewer_still_sees(client: Any) -> None:
    alice, bob, carol = await signup(client), await signup(client), await signup(client)
    posts = [await create(client, alice, body=f"p{i}") for i in range(3)]
    by_carol = await create(client, carol)
    for item in [*posts, by_carol]:
        await ok(await rest(client, bob, "item.save", {"item_id": item["id"]}))
    db = client.server.app[SERVICES].db
    viewer = uuid.UUID(bob.id)
    page = await engagement.saved_page(db, viewer, None, 10)
    assert [str(item.id) for _, item in page] == [by_carol["id"], *[p["id"] for p in
                                                                     reversed(posts)]]
    first = await engagement.saved_page(db, viewer, None, 2)
    after = Position(first[-1][0], first[-1][1].id)
    second = await engagement.saved_page(db, viewer, (after.at, after.id), 10)
    assert [i.id for _, i in first + second] == [i.id for _, i in page]
    await block(client, carol, bob)
    page = await engagement.saved_page(db, viewer, None, 10)
    assert by_carol["id"] not in [str(i.id) for _, i in page] and len(page) == 3


async def test_the_quoted_author_detaches_a_quote(client: Any) -> None:
    alice, bob, carol = await signup(client), await signup(client), await signup(client)
    original = await create(client, alice, body="original")
    quote = await create(client, bob, body="look", quoted_id=original["id"])
    assert quote["quoted"]["id"] == original["id"]
    for account in (bob, carol):
        error = await refused(await rest(client, account, "item.detach_quote",
                                         {"item_id": quote["id"]}), 403, "forbidden")
        assert error["details"]["reason"] == "not_quoted_author"
    detached = await ok(await rest(client, alice, "item.detach_quote", {"item_id": quote["id"]}))
    assert detached["quote_detached"] is True and detached["quoted"] is None
    assert detached["quoted_id"] == original["id"]
    again = await ok(await rest(client, alice, "item.detach_quote", {"item_id": quote["id"]}))
    assert again["quote_detached"] is True
    seen = await fetch(client, carol, quote["id"])
    assert seen["quoted"] is None and seen["quote_detached"] is True
    error = await refused(await rest(client, alice, "item.detach_quote",
                                     {"item_id": original["id"]}), 400, "invalid_input")
    assert fields_of(error) == {"item_id"}
    hidden = await create(client, bob, body="mine only", quoted_id=original["id"],
                          visibility="private")
    await refused(await rest(client, alice, "item.detach_quote", {"item_id": hidden["id"]}), 404,
                  "not_found")
    await refused(await rest(client, alice, "item.detach_quote", {"item_id": MISSING}), 404,
                  "not_found")
