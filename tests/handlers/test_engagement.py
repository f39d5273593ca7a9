"""Reactions on items over REST: replace, undo, exact counters under concurrency, who reacted."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest

from config import Rates, Settings
from tests.conftest import AppFactory, signup
from tests.handlers.conversation_helpers import fields_of, ok, refused, rest
from tests.handlers.item_helpers import block, create, fetch, notes, sql
from tests.handlers.social_helpers import until

MISSING = "00000000-0000-0000-0000-000000000000"
KINDS = ["like", "love", "haha", "wow", "sad", "angry"]


@pytest.fixture
async def client(make_client: AppFactory, settings: Settings) -> Any:
    """The app, with room for the many sign-ups these tests make from one address."""
    return await make_client(rates=Rates(signup=(500, 3600)))


async def react(client: Any, account: Any, item_id: str, kind: str) -> Any:
    return await rest(client, account, "item.react", {"item_id": item_id, "kind": kind})


async def stored_counts(database_url: str, item_id: str) -> tuple[int, dict[str, int], dict[str, int]]:
    """The item's counters, and the counts of its reaction rows per kind."""
    [row] = await sql(database_url, "SELECT reaction_count, reaction_counts FROM items WHERE id = $1",
                      item_id)
    rows = await sql(database_url, "SELECT kind, count(*) AS n FROM item_reactions "
                                   "WHERE item_id = $1 GROUP BY kind", item_id)
    counts = row["reaction_counts"]
    return row["reaction_count"], json.loads(counts) if isinstance(counts, str) else counts, \
        {r["kind"]: r["n"] for r in rows}


async def test_react_replaces_and_unreact_removes(client: Any) -> None:
    alice, bob = await signup(client), await signup(client)
    post = await create(client, alice)
    first = await ok(await react(client, bob, post["id"], "like"))
    assert first["reaction_count"] == 1 and first["reactions"] == {"like": 1}
    assert first["my_reaction"] == "like" and first["item_id"] == post["id"]
    assert isinstance(first["version"], int)
    again = await ok(await react(client, bob, post["id"], "like"))
    assert again["reactions"] == {"like": 1} and again["version"] is None  # no change
    switched = await ok(await react(client, bob, post["id"], "love"))
    assert switched["reaction_count"] == 1 and switched["reactions"] == {"love": 1}
    assert switched["version"] > first["version"]
    await ok(await react(client, alice, post["id"], "love"))
    seen = await fetch(client, bob, post["id"])
    assert seen["my_reaction"] == "love" and seen["reactions"] == {"love": 2}
    assert seen["counts"]["reactions"] == 2
    gone = await ok(await rest(client, bob, "item.unreact", {"item_id": post["id"]}))
    assert gone == {**gone, "reaction_count": 1, "reactions": {"love": 1}, "my_reaction": None}
    still = await ok(await rest(client, bob, "item.unreact", {"item_id": post["id"]}))
    assert still["reaction_count"] == 1 and still["version"] is None
    # Reactions work on any item: a comment too.
    comment = await create(client, bob, "comment", "hi", parent_id=post["id"])
    on_comment = await ok(await react(client, alice, comment["id"], "haha"))
    assert on_comment["reactions"] == {"haha": 1}


async def test_react_bad_input(client: Any) -> None:
    alice = await signup(client)
    post = await create(client, alice)
    for payload, field in [
        ({"item_id": post["id"]}, "kind"),
        ({"item_id": post["id"], "kind": "meh"}, "kind"),
        ({"item_id": post["id"], "kind": 3}, "kind"),
        ({"item_id": post["id"], "kind": "like", "extra": 1}, "extra"),
    ]:
        error = await refused(await rest(client, alice, "item.react", payload), 400, "invalid_input")
        assert field in fields_of(error)
    resp = await client.put("/v1/items/not-a-uuid/reaction", json={"kind": "like"},
                            headers=alice.headers)
    assert resp.status == 400
    await refused(await react(client, alice, MISSING, "like"), 404, "not_found")
    await refused(await rest(client, alice, "item.unreact", {"item_id": MISSING}), 404, "not_found")
    resp = await client.put(f"/v1/items/{post['id']}/reaction", json={"kind": "like"})
    assert resp.status == 401


async def test_items_one_cannot_see_are_not_found(client: Any) -> None:
    alice, bob, carol = await signup(client), await signup(client), await signup(client)
    private = await create(client, alice, visibility="private")
    followers = await create(client, alice, visibility="followers")
    public = await create(client, carol)
    await block(client, carol, bob)
    for item in (private, followers, public):
        await refused(await react(client, bob, item["id"], "like"), 404, "not_found")
        await refused(await rest(client, bob, "item.reaction.list", {"item_id": item["id"]}), 404,
                      "not_found")
        await refused(await rest(client, bob, "item.unreact", {"item_id": item["id"]}), 404,
                      "not_found")
    assert (await ok(await react(client, alice, private["id"], "wow")))["reactions"] == {"wow": 1}


async def test_a_deleted_item_takes_no_reaction(client: Any) -> None:
    alice, bob = await signup(client), await signup(client)
    post = await create(client, alice)
    await ok(await react(client, bob, post["id"], "sad"))
    await ok(await rest(client, alice, "item.delete", {"item_id": post["id"]}), 204)
    error = await refused(await react(client, bob, post["id"], "like"), 409, "conflict")
    assert error["details"]["reason"] == "deleted"
    # Undoing still works.
    assert (await ok(await rest(client, bob, "item.unreact", {"item_id": post["id"]})))[
        "reaction_count"] == 0


async def test_twenty_concurrent_reactions_keep_exact_counts(client: Any, database_url: str) -> None:
    alice = await signup(client)
    post = await create(client, alice)
    users = await asyncio.gather(*(signup(client) for _ in range(20)))
    kinds = [KINDS[i % len(KINDS)] for i in range(20)]
    answers = await asyncio.gather(*(react(client, u, post["id"], k) for u, k in zip(users, kinds,
                                                                                      strict=True)))
    assert all(a.status == 200 for a in answers)
    expected = {k: kinds.count(k) for k in set(kinds)}
    total, counts, rows = await stored_counts(database_url, post["id"])
    assert total == 20 and counts == expected and rows == expected
    # Each answer saw a consistent state, and one of them saw all 20.
    bodies = [await a.json() for a in answers]
    assert max(b["reaction_count"] for b in bodies) == 20
    assert all(sum(b["reactions"].values()) == b["reaction_count"] for b in bodies)
    # Everyone switches and half undo, all at once.
    calls = [react(client, u, post["id"], "angry") if i % 2 else
             rest(client, u, "item.unreact", {"item_id": post["id"]}) for i, u in enumerate(users)]
    assert all(r.status == 200 for r in await asyncio.gather(*calls))
    total, counts, rows = await stored_counts(database_url, post["id"])
    assert total == 10 and counts == {"angry": 10} and rows == {"angry": 10}


async def test_one_user_switching_kinds_concurrently(client: Any, database_url: str) -> None:
    alice, bob = await signup(client), await signup(client)
    post = await create(client, alice)
    rng = random.Random(7)
    calls = [rest(client, bob, "item.unreact", {"item_id": post["id"]}) if rng.random() < 0.25
             else react(client, bob, post["id"], rng.choice(KINDS)) for _ in range(20)]
    assert all(r.status == 200 for r in await asyncio.gather(*calls))
    total, counts, rows = await stored_counts(database_url, post["id"])
    assert total == sum(rows.values()) <= 1 and counts == rows
    mine = (await fetch(client, bob, post["id"]))["my_reaction"]
    assert (mine is None and total == 0) or counts == {mine: 1}


async def test_a_reaction_notifies_the_author_once(client: Any) -> None:
    alice, bob, carol = await signup(client), await signup(client), await signup(client)
    post = await create(client, alice, body="look at this")
    await ok(await react(client, alice, post["id"], "like"))  # one's own: no notification
    await ok(await react(client, bob, post["id"], "like"))
    await ok(await react(client, bob, post["id"], "love"))
    await ok(await rest(client, bob, "item.unreact", {"item_id": post["id"]}))
    await ok(await react(client, bob, post["id"], "wow"))
    await ok(await react(client, carol, post["id"], "haha"))

    async def grouped() -> Any:
        found = await notes(client, alice, "reaction")
        return found if found and found[0]["actor_count"] == 2 else None

    [note] = await until(grouped)
    assert note["subject"] == {"type": "item", "id": post["id"]}
    assert note["count"] == 2 and set(note["actor_ids"]) == {bob.id, carol.id}
    assert note["group_key"] == f"reaction:item:{post['id']}"
    assert await notes(client, bob, "reaction") == []


async def test_who_reacted_newest_first_paged_and_without_blocked_users(client: Any) -> None:
    alice = await signup(client)
    users = [await signup(client) for _ in range(4)]
    post = await create(client, alice)
    for user, kind in zip(users, ["like", "love", "like", "wow"], strict=True):
        await ok(await react(client, user, post["id"], kind))
    page = await ok(await rest(client, alice, "item.reaction.list", {"item_id": post["id"]}))
    assert [r["user"]["id"] for r in page["reactions"]] == [u.id for u in reversed(users)]
    assert page["reactions"][0]["kind"] == "wow" and page["next_cursor"] is None
    assert page["reactions"][0]["user"]["username"] == users[3].username
    likes = await ok(await rest(client, alice, "item.reaction.list",
                                {"item_id": post["id"], "kind": "like"}))
    assert [r["user"]["id"] for r in likes["reactions"]] == [users[2].id, users[0].id]
    first = await ok(await rest(client, alice, "item.reaction.list", {"item_id": post["id"], "limit": 3}))
    assert len(first["reactions"]) == 3 and first["next_cursor"]
    rest_of = await ok(await rest(client, alice, "item.reaction.list",
                                  {"item_id": post["id"], "limit": 3, "cursor": first["next_cursor"]}))
    assert [r["user"]["id"] for r in rest_of["reactions"]] == [users[0].id]
    await block(client, alice, users[1])
    page = await ok(await rest(client, alice, "item.reaction.list", {"item_id": post["id"]}))
    assert users[1].id not in [r["user"]["id"] for r in page["reactions"]]
    assert len(page["reactions"]) == 3
    cases: list[tuple[dict[str, Any], str]] = [
        ({"limit": 41}, "limit"), ({"limit": 0}, "limit"), ({"cursor": "!!"}, "cursor"),
        ({"kind": "meh"}, "kind")]
    for payload, field in cases:
        error = await refused(await rest(client, alice, "item.reaction.list",
                                         {"item_id": post["id"], **payload}), 400, "invalid_input")
        assert fields_of(error) == {field}


async def test_engagement_actions_are_rate_limited(client: Any) -> None:
    alice = await signup(client)
    post = await create(client, alice)
    for i in range(120):
        name = "item.save" if i % 2 == 0 else "item.unsave"
        await ok(await rest(client, alice, name, {"item_id": post["id"]}))
    error = await refused(await react(client, alice, post["id"], "like"), 429, "rate_limited")
    assert error["details"]["retry_after"] >= 1
