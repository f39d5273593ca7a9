"""The visibility rules as a matrix: who may read, comment, react, share and quote what.

Viewers: the author, a follower, a friend, a stranger, a user the author blocked, a member
of the author's cliques and a non-member. Audiences: the four item visibilities and a post
in a public and in a private clique. Each cell is allowed, or refused with the documented
code: an item the viewer may not see is `not_found` for every action (its existence is not
revealed); a visible item that may not be shared, or a clique thread a non-member may not
answer, is `forbidden`. docs/social-model.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import Account, signup
from tests.handlers.conversation_helpers import ok, rest

Client = TestClient[Any, Any]

VIEWERS = ("author", "follower", "friend", "stranger", "blocked", "member", "non_member")
AUDIENCES = ("public", "followers", "friends", "private", "clique_public", "clique_private")
ACTIONS = ("read", "comment", "react", "share", "quote")

# Who sees an item of each audience (the author always does; the blocked user never).
SEES: dict[str, set[str]] = {
    "public": {"author", "follower", "friend", "stranger", "member", "non_member"},
    "followers": {"author", "follower", "friend"},
    "friends": {"author", "friend"},
    "private": {"author"},
    "clique_public": {"author", "follower", "friend", "stranger", "member", "non_member"},
    "clique_private": {"author", "member"},
}
# Audiences whose items cannot be reposted, even by those who see them.
NOT_SHAREABLE = {"private", "clique_private"}
# In a clique only members (the author is one) may comment; others may read and react.
COMMENTERS_IN_CLIQUES = {"author", "member"}


def expected(viewer: str, audience: str, action: str) -> tuple[int, str | None]:
    """The (HTTP status, error code) the documented rules give for one cell."""
    if viewer not in SEES[audience]:
        return 404, "not_found"
    if action == "share" and audience in NOT_SHAREABLE:
        return 403, "forbidden"
    if action == "comment" and audience.startswith("clique_") and viewer not in COMMENTERS_IN_CLIQUES:
        return 403, "forbidden"
    return {"read": 200, "comment": 201, "react": 200, "share": 200, "quote": 201}[action], None


@dataclass
class World:
    people: dict[str, Account]
    cliques: dict[str, str]


async def _build_world(client: Client) -> World:
    people = {name: await signup(client) for name in VIEWERS}
    author = people["author"]
    await ok(await rest(client, people["follower"], "user.follow", {"user_id": author.id}))
    await ok(await rest(client, people["friend"], "friend_request.send", {"user_id": author.id}))
    await ok(await rest(client, author, "friend_request.accept", {"user_id": people["friend"].id}))
    # The blocked user followed the author before the block; the block removes that too.
    await ok(await rest(client, people["blocked"], "user.follow", {"user_id": author.id}))
    await ok(await rest(client, author, "user.block", {"user_id": people["blocked"].id}), 204)
    cliques: dict[str, str] = {}
    for kind, private in (("clique_public", False), ("clique_private", True)):
        clique = await ok(await rest(client, author, "clique.create",
                                     {"name": kind, "is_private": private}), 201)
        cliques[kind] = clique["id"]
        await ok(await rest(client, people["member"], "clique.join", {"clique_id": clique["id"]}))
        if private:
            await ok(await rest(client, author, "clique.request.approve",
                                {"clique_id": clique["id"], "user_id": people["member"].id}))
    return World(people, cliques)


async def _post(client: Client, world: World, audience: str) -> str:
    body: dict[str, Any] = {"kind": "post", "body": f"a {audience} post"}
    if audience.startswith("clique_"):
        body["clique_id"] = world.cliques[audience]
    else:
        body["visibility"] = audience
    item = await ok(await rest(client, world.people["author"], "item.create", body), 201)
    return str(item["id"])


async def _act(client: Client, who: Account, action: str, item_id: str) -> Any:
    if action == "read":
        return await rest(client, who, "item.get", {"item_id": item_id})
    if action == "comment":
        return await rest(client, who, "item.create",
                          {"kind": "comment", "parent_id": item_id, "body": "nice"})
    if action == "react":
        return await rest(client, who, "item.react", {"item_id": item_id, "kind": "like"})
    if action == "share":
        return await rest(client, who, "item.share", {"item_id": item_id})
    return await rest(client, who, "item.create",
                      {"kind": "notice", "body": "look at this", "quoted_id": item_id})


@pytest.mark.parametrize("audience", AUDIENCES)
async def test_matrix(client: Client, audience: str) -> None:
    world = await _build_world(client)
    item_id = await _post(client, world, audience)
    seen: dict[tuple[str, str], tuple[int, str | None]] = {}
    for viewer in VIEWERS:
        for action in ACTIONS:
            resp = await _act(client, world.people[viewer], action, item_id)
            code = (await resp.json())["error"]["code"] if resp.status >= 400 else None
            seen[viewer, action] = (resp.status, code)
    want = {(v, a): expected(v, audience, a) for v in VIEWERS for a in ACTIONS}
    wrong = {cell: (seen[cell], want[cell]) for cell in want if seen[cell] != want[cell]}
    assert not wrong, f"{audience}: (got, expected) per (viewer, action): {wrong}"

    # Counts follow what was allowed: one comment, one reaction, one share, one quote
    # per viewer who could act.
    item = await ok(await rest(client, world.people["author"], "item.get", {"item_id": item_id}))
    actors = len(SEES[audience])
    commenters = SEES[audience] & COMMENTERS_IN_CLIQUES if audience.startswith("clique_") else SEES[audience]
    assert item["counts"]["replies"] == len(commenters)
    assert item["counts"]["reactions"] == actors
    assert item["counts"]["quotes"] == actors
    assert item["counts"]["shares"] == (0 if audience in NOT_SHAREABLE else actors)


async def test_comments_by_a_blocked_user_are_hidden_both_ways(client: Client) -> None:
    """A thread visible to both: the blocker and the blocked do not see each other's comments."""
    author, alice, bob = [await signup(client) for _ in range(3)]
    post = await ok(await rest(client, author, "item.create", {"kind": "post", "body": "hi"}), 201)
    comments = {}
    for who in (alice, bob):
        comment = await ok(await rest(client, who, "item.create",
                                      {"kind": "comment", "parent_id": post["id"], "body": "c"}),
                           201)
        comments[who.id] = comment["id"]
    await ok(await rest(client, alice, "user.block", {"user_id": bob.id}), 204)

    async def listed(who: Account) -> set[str]:
        page = await ok(await rest(client, who, "item.comment.list", {"item_id": post["id"]}))
        return {c["id"] for c in page["items"]}

    assert await listed(alice) == {comments[alice.id]}
    assert await listed(bob) == {comments[bob.id]}
    assert await listed(author) == set(comments.values())
    resp = await rest(client, alice, "item.get", {"item_id": comments[bob.id]})
    assert resp.status == 404
    resp = await rest(client, bob, "item.react", {"item_id": comments[alice.id], "kind": "like"})
    assert resp.status == 404
