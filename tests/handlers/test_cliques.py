"""Clique commands: create, read, update, delete, lists, search, join and requests, leave, follow."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import jwt
import pytest

from config import Rates, Settings
from server.resources import build_token_service
from tests.conftest import Account, AppFactory, signup
from tests.handlers.clique_helpers import (
    Client,
    add_members,
    all_pages,
    card,
    join,
    make_clique,
    people,
    set_role,
    staffed,
)
from tests.handlers.conversation_helpers import fields_of, ok, refused, rest


async def test_create_makes_the_creator_owner(client: Client) -> None:
    alice, bob = await people(client, 2)
    clique = await make_clique(client, alice, name="  Night owls ", description="We stay up.",
                               avatar_url="https://img.example.com/o.png")
    assert clique["name"] == "Night owls" and clique["description"] == "We stay up."
    assert clique["is_private"] is False and clique["avatar_url"] == "https://img.example.com/o.png"
    assert clique["owner_id"] == alice.id
    assert clique["member_count"] == 1 and clique["follower_count"] == 0
    assert clique["viewer"] == {"role": "owner", "following": False, "requested": False,
                                "invited": False, "banned": False}
    seen = await card(client, bob, clique["id"])
    assert seen["viewer"]["role"] is None and seen["name"] == "Night owls"


@pytest.mark.parametrize(("payload", "field"), [
    ({"is_private": False}, "name"),
    ({"name": "", "is_private": False}, "name"),
    ({"name": "   ", "is_private": False}, "name"),
    ({"name": "n" * 81, "is_private": False}, "name"),
    ({"name": "a\nb", "is_private": False}, "name"),
    ({"name": "a\x00b", "is_private": False}, "name"),
    ({"name": 7, "is_private": False}, "name"),
    ({"name": "ok"}, "is_private"),
    ({"name": "ok", "is_private": "maybe"}, "is_private"),
    ({"name": "ok", "is_private": False, "description": "d" * 2001}, "description"),
    ({"name": "ok", "is_private": False, "avatar_url": "ftp://x/y.png"}, "avatar_url"),
    ({"name": "ok", "is_private": False, "owner_id": str(uuid.uuid4())}, "owner_id"),
])
async def test_create_bad_input(client: Client, payload: dict[str, Any], field: str) -> None:
    alice = await signup(client)
    error = await refused(await rest(client, alice, "clique.create", payload), 400, "invalid_input")
    assert field in fields_of(error)


async def test_create_limits(client: Client, database_url: str) -> None:
    alice, bob = await people(client, 2)
    edge = await make_clique(client, alice, name="n" * 80, description="d" * 2000)
    assert len(edge["name"]) == 80
    for n in range(9):
        await make_clique(client, alice, name=f"c{n}")
    error = await refused(await rest(client, alice, "clique.create", {"name": "x", "is_private": False}),
                          429, "rate_limited")
    assert error["details"]["retry_after"] >= 1
    # At most 100 owned cliques: bob owns 100 already (written directly, past the hourly limit).
    conn = await asyncpg.connect(database_url)
    try:
        for n in range(100):
            clique_id = await conn.fetchval(
                "INSERT INTO cliques (name, member_count) VALUES ($1, 1) RETURNING id", f"b{n}")
            await conn.execute("INSERT INTO clique_members (clique_id, user_id, role) "
                               "VALUES ($1, $2, 'owner')", clique_id, uuid.UUID(bob.id))
    finally:
        await conn.close()
    error = await refused(await rest(client, bob, "clique.create", {"name": "x", "is_private": True}),
                          409, "conflict")
    assert error["details"] == {"reason": "too_many_owned", "limit": 100}
    # Nor can ownership be handed to him.
    await add_members(client, alice, edge["id"], bob)
    error = await refused(await rest(client, alice, "clique.transfer_ownership",
                                     {"clique_id": edge["id"], "user_id": bob.id}), 409, "conflict")
    assert error["details"]["reason"] == "too_many_owned"
    # A deleted clique no longer counts.
    mine = await ok(await rest(client, bob, "clique.list_mine", {"limit": 2}))
    assert [c["viewer"]["role"] for c in mine["cliques"]] == ["member", "owner"]
    await ok(await rest(client, bob, "clique.delete", {"clique_id": mine["cliques"][1]["id"]}), 204)
    await make_clique(client, bob, name="101st")


async def test_get_and_unknown_cliques(client: Client) -> None:
    alice, bob = await people(client, 2)
    secret = await make_clique(client, alice, private=True, name="Secret", description="shh")
    seen = await card(client, bob, secret["id"])
    assert seen["name"] == "Secret" and seen["description"] == "shh" and seen["is_private"] is True
    await refused(await rest(client, bob, "clique.get", {"clique_id": str(uuid.uuid4())}),
                  404, "not_found")
    error = await refused(await rest(client, bob, "clique.get", {"clique_id": "nope"}),
                          400, "invalid_input")
    assert fields_of(error) == {"clique_id"}


async def test_update_by_owner_and_admin_only(client: Client) -> None:
    staff = await staffed(client)
    resp = await rest(client, staff.admin, "clique.update", {
        "clique_id": staff.id, "name": "Renamed", "description": "new", "avatar_url": None})
    updated = await ok(resp)
    assert updated["name"] == "Renamed" and updated["description"] == "new"
    assert updated["avatar_url"] is None and updated["updated_at"] > updated["created_at"]
    cleared = await ok(await rest(client, staff.owner, "clique.update",
                                  {"clique_id": staff.id, "description": None}))
    assert cleared["description"] is None and cleared["name"] == "Renamed"
    for who in (staff.moderator, staff.member, staff.outsider):
        error = await refused(await rest(client, who, "clique.update",
                                         {"clique_id": staff.id, "name": "x"}), 403, "forbidden")
        assert error["details"] == {"reason": "not_admin", "required_role": "admin"}
    await refused(await rest(client, staff.owner, "clique.update",
                             {"clique_id": str(uuid.uuid4()), "name": "x"}), 404, "not_found")


@pytest.mark.parametrize("payload", [
    {}, {"name": None}, {"is_private": None}, {"name": ""}, {"name": "n" * 81},
    {"description": "d" * 2001}, {"avatar_url": "x"}, {"member_count": 5},
])
async def test_update_bad_input(client: Client, payload: dict[str, Any]) -> None:
    alice = await signup(client)
    clique = await make_clique(client, alice)
    await refused(await rest(client, alice, "clique.update", {"clique_id": clique["id"], **payload}),
                  400, "invalid_input")


async def test_privacy_changes(client: Client) -> None:
    alice, bob, carol, dan = await people(client, 4)
    clique = await make_clique(client, alice, private=True)
    assert await join(client, bob, clique["id"]) == "requested"
    assert await join(client, carol, clique["id"]) == "requested"
    # Going public lets the pending requesters in.
    opened = await ok(await rest(client, alice, "clique.update",
                                 {"clique_id": clique["id"], "is_private": False}))
    assert opened["is_private"] is False and opened["member_count"] == 3
    assert (await card(client, bob, clique["id"]))["viewer"]["role"] == "member"
    await ok(await rest(client, dan, "clique.follow", {"clique_id": clique["id"]}))
    # Going private drops the followers (following is for public cliques).
    closed = await ok(await rest(client, alice, "clique.update",
                                 {"clique_id": clique["id"], "is_private": True}))
    assert closed["follower_count"] == 0
    assert (await card(client, dan, clique["id"]))["viewer"]["following"] is False


async def test_delete_by_owner_then_everything_is_not_found(client: Client) -> None:
    staff = await staffed(client)
    post = await ok(await rest(client, staff.member, "item.create",
                               {"kind": "post", "body": "hello", "clique_id": staff.id}), 201)
    await ok(await rest(client, staff.outsider, "item.get", {"item_id": post["id"]}))
    for who in (staff.admin, staff.moderator, staff.member, staff.outsider):
        await refused(await rest(client, who, "clique.delete", {"clique_id": staff.id}), 403, "forbidden")
    await ok(await rest(client, staff.owner, "clique.delete", {"clique_id": staff.id}), 204)
    gone = {"clique_id": staff.id}
    for name, payload in [
        ("clique.get", gone), ("clique.join", gone), ("clique.leave", gone),
        ("clique.member.list", gone), ("clique.update", {**gone, "name": "x"}),
        ("clique.delete", gone), ("clique.follow", gone), ("clique.request.list", gone),
        ("clique.invite", {**gone, "user_id": staff.outsider.id}), ("clique.ban.list", gone),
        ("clique.ban", {**gone, "user_id": staff.member.id}),
        ("clique.item.remove", {**gone, "item_id": post["id"]}),
    ]:
        await refused(await rest(client, staff.owner, name, payload), 404, "not_found")
    assert (await ok(await rest(client, staff.member, "clique.list_mine", {})))["cliques"] == []
    assert (await ok(await rest(client, staff.outsider, "clique.search", {"q": staff.name})))["cliques"] == []
    # Its posts are gone for everyone but their author.
    await refused(await rest(client, staff.outsider, "item.get", {"item_id": post["id"]}), 404, "not_found")
    await refused(await rest(client, staff.owner, "item.get", {"item_id": post["id"]}), 404, "not_found")
    await ok(await rest(client, staff.member, "item.get", {"item_id": post["id"]}))


async def test_list_mine_pages_most_recently_joined_first(client: Client) -> None:
    alice, bob = await people(client, 2)
    ids = [(await make_clique(client, bob, name=f"c{n}"))["id"] for n in range(5)]
    for clique_id in ids:
        await join(client, alice, clique_id)
    pages = await all_pages(client, alice, "clique.list_mine", "cliques", {}, 2)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [c["id"] for p in pages for c in p] == ids[::-1]
    assert all(c["viewer"]["role"] == "member" for p in pages for c in p)
    owned = await ok(await rest(client, bob, "clique.list_mine", {}))
    assert [c["viewer"]["role"] for c in owned["cliques"]] == ["owner"] * 5


@pytest.mark.parametrize(("name", "payload", "field"), [
    ("clique.list_mine", {"limit": 0}, "limit"),
    ("clique.list_mine", {"limit": 41}, "limit"),
    ("clique.list_mine", {"cursor": "not-a-cursor"}, "cursor"),
    ("clique.search", {}, "q"),
    ("clique.search", {"q": ""}, "q"),
    ("clique.search", {"q": "q" * 81}, "q"),
    ("clique.search", {"q": "a", "limit": 41}, "limit"),
    ("clique.invite.list", {"limit": 41}, "limit"),
])
async def test_list_bad_input(client: Client, name: str, payload: dict[str, Any], field: str) -> None:
    alice = await signup(client)
    error = await refused(await rest(client, alice, name, payload), 400, "invalid_input")
    assert field in fields_of(error)


async def test_search_by_name_part(client: Client) -> None:
    alice, bob = await people(client, 2)
    tag = uuid.uuid4().hex[:8]
    hikers = await make_clique(client, alice, name=f"{tag} Mountain Hikers")
    secret = await make_clique(client, alice, name=f"{tag} secret hikers", private=True)
    await make_clique(client, alice, name=f"{tag} Bakers")
    await make_clique(client, alice, name=f"{tag} 100% real")
    found = await ok(await rest(client, bob, "clique.search", {"q": f"{tag} HIK"}))
    assert found["cliques"] == []
    found = await ok(await rest(client, bob, "clique.search", {"q": "HIKERS"}))
    assert [c["id"] for c in found["cliques"]][:2] == [secret["id"], hikers["id"]]
    assert found["cliques"][0]["is_private"] is True
    # % and _ are literal characters, not wildcards.
    percent = await ok(await rest(client, bob, "clique.search", {"q": f"{tag} 100%"}))
    assert [c["name"] for c in percent["cliques"]] == [f"{tag} 100% real"]
    assert (await ok(await rest(client, bob, "clique.search", {"q": f"{tag}_"})))["cliques"] == []
    pages = await all_pages(client, bob, "clique.search", "cliques", {"q": tag}, 3)
    assert [len(p) for p in pages] == [3, 1]


async def test_join_public_private_and_invited(client: Client) -> None:
    alice, bob, carol = await people(client, 3)
    public = await make_clique(client, alice)
    private = await make_clique(client, alice, private=True)
    assert await join(client, bob, public["id"]) == "member"
    assert await join(client, bob, public["id"]) == "member"
    assert (await card(client, bob, public["id"]))["member_count"] == 2
    assert await join(client, bob, private["id"]) == "requested"
    assert await join(client, bob, private["id"]) == "requested"
    seen = await card(client, bob, private["id"])
    assert seen["member_count"] == 1 and seen["viewer"]["requested"] is True
    await ok(await rest(client, alice, "clique.invite", {"clique_id": private["id"], "user_id": carol.id}))
    assert (await card(client, carol, private["id"]))["viewer"]["invited"] is True
    assert await join(client, carol, private["id"]) == "member"
    seen = await card(client, carol, private["id"])
    assert seen["viewer"]["invited"] is False and seen["viewer"]["role"] == "member"
    await refused(await rest(client, bob, "clique.join", {"clique_id": str(uuid.uuid4())}),
                  404, "not_found")
    await refused(await rest(client, bob, "clique.join", {"clique_id": public["id"], "x": 1}),
                  400, "invalid_input")


async def test_concurrent_joins_keep_the_count(make_client: AppFactory) -> None:
    client = await make_client(rates=Rates(signup=(50, 3600)))
    owner = await signup(client)
    clique = await make_clique(client, owner)
    joiners = await people(client, 20)
    statuses = await asyncio.gather(*(join(client, j, clique["id"]) for j in joiners))
    assert statuses == ["member"] * 20
    assert (await card(client, owner, clique["id"]))["member_count"] == 21
    pages = await all_pages(client, owner, "clique.member.list", "members", {"clique_id": clique["id"]}, 40)
    assert len(pages[0]) == 21
    await asyncio.gather(*(rest(client, j, "clique.leave", {"clique_id": clique["id"]})
                           for j in joiners[:10]))
    assert (await card(client, owner, clique["id"]))["member_count"] == 11


async def test_requests_approve_reject(client: Client) -> None:
    staff = await staffed(client, private=True)
    bob, carol, dan = await people(client, 3)
    for who in (bob, carol, dan):
        assert await join(client, who, staff.id) == "requested"
    for who in (staff.member, staff.outsider, bob):
        error = await refused(await rest(client, who, "clique.request.list", {"clique_id": staff.id}),
                              403, "forbidden")
        assert error["details"]["reason"] == "not_moderator"
        await refused(await rest(client, who, "clique.request.approve",
                                 {"clique_id": staff.id, "user_id": carol.id}), 403, "forbidden")
        await refused(await rest(client, who, "clique.request.reject",
                                 {"clique_id": staff.id, "user_id": carol.id}), 403, "forbidden")
    pages = await all_pages(client, staff.moderator, "clique.request.list", "requests",
                            {"clique_id": staff.id}, 2)
    listed = [r["user"]["id"] for p in pages for r in p]
    assert [len(p) for p in pages] == [2, 1] and listed == [dan.id, carol.id, bob.id]
    assert pages[0][0]["user"]["username"] == dan.username
    approved = await ok(await rest(client, staff.moderator, "clique.request.approve",
                                   {"clique_id": staff.id, "user_id": bob.id}))
    assert approved["user"]["id"] == bob.id and approved["role"] == "member"
    assert (await card(client, bob, staff.id))["member_count"] == 5
    await ok(await rest(client, staff.admin, "clique.request.reject",
                        {"clique_id": staff.id, "user_id": carol.id}), 204)
    for name in ("clique.request.approve", "clique.request.reject"):
        for target in (bob, carol, staff.outsider):
            await refused(await rest(client, staff.owner, name,
                                     {"clique_id": staff.id, "user_id": target.id}), 404, "not_found")
    remaining = await ok(await rest(client, staff.owner, "clique.request.list", {"clique_id": staff.id}))
    assert [r["user"]["id"] for r in remaining["requests"]] == [dan.id]
    # A rejected user may ask again; leave withdraws a pending request.
    assert await join(client, carol, staff.id) == "requested"
    await ok(await rest(client, carol, "clique.leave", {"clique_id": staff.id}), 204)
    assert (await card(client, carol, staff.id))["viewer"]["requested"] is False
    await refused(await rest(client, staff.owner, "clique.request.approve",
                             {"clique_id": staff.id, "user_id": "x"}), 400, "invalid_input")


async def test_leave_and_ownership_succession(client: Client) -> None:
    owner, early_member, moderator, admin_one, admin_two, stranger = await people(client, 6)
    clique = await make_clique(client, owner)
    cid = clique["id"]
    await add_members(client, owner, cid, early_member, moderator, admin_one, admin_two)
    await ok(await set_role(client, owner, cid, moderator, "moderator"))
    await ok(await set_role(client, owner, cid, admin_two, "admin"))
    await ok(await set_role(client, owner, cid, admin_one, "admin"))
    error = await refused(await rest(client, stranger, "clique.leave", {"clique_id": cid}), 409, "conflict")
    assert error["details"]["reason"] == "not_member"
    await ok(await rest(client, early_member, "clique.leave", {"clique_id": cid}), 204)
    assert (await card(client, owner, cid))["member_count"] == 4
    # The longest-serving admin inherits (admin_one joined before admin_two).
    await ok(await rest(client, owner, "clique.leave", {"clique_id": cid}), 204)
    seen = await card(client, admin_one, cid)
    assert seen["owner_id"] == admin_one.id and seen["viewer"]["role"] == "owner"
    assert seen["member_count"] == 3
    # With no admin left, the moderator inherits; then the only member cannot leave.
    await ok(await rest(client, admin_two, "clique.leave", {"clique_id": cid}), 204)
    await ok(await rest(client, admin_one, "clique.leave", {"clique_id": cid}), 204)
    assert (await card(client, moderator, cid))["owner_id"] == moderator.id
    error = await refused(await rest(client, moderator, "clique.leave", {"clique_id": cid}), 409, "conflict")
    assert error["details"]["reason"] == "last_member"


async def test_follow_and_unfollow(client: Client) -> None:
    alice, bob, carol = await people(client, 3)
    public = await make_clique(client, alice)
    private = await make_clique(client, alice, private=True)
    followed = await ok(await rest(client, bob, "clique.follow", {"clique_id": public["id"]}))
    assert followed["follower_count"] == 1 and followed["viewer"]["following"] is True
    again = await ok(await rest(client, bob, "clique.follow", {"clique_id": public["id"]}))
    assert again["follower_count"] == 1
    await ok(await rest(client, carol, "clique.follow", {"clique_id": public["id"]}))
    error = await refused(await rest(client, bob, "clique.follow", {"clique_id": private["id"]}),
                          403, "forbidden")
    assert error["details"]["reason"] == "private"
    left = await ok(await rest(client, bob, "clique.unfollow", {"clique_id": public["id"]}))
    assert left["follower_count"] == 1 and left["viewer"]["following"] is False
    assert (await ok(await rest(client, bob, "clique.unfollow",
                                {"clique_id": public["id"]})))["follower_count"] == 1
    await refused(await rest(client, bob, "clique.follow", {"clique_id": str(uuid.uuid4())}),
                  404, "not_found")
    await ok(await rest(client, alice, "clique.ban", {"clique_id": public["id"], "user_id": carol.id}))
    assert (await card(client, alice, public["id"]))["follower_count"] == 0
    error = await refused(await rest(client, carol, "clique.follow", {"clique_id": public["id"]}),
                          403, "forbidden")
    assert error["details"]["reason"] == "banned"


async def test_members_list(client: Client) -> None:
    staff = await staffed(client, private=True)
    for who in (staff.outsider,):
        error = await refused(await rest(client, who, "clique.member.list", {"clique_id": staff.id}),
                              403, "forbidden")
        assert error["details"]["reason"] == "members_only"
    pages = await all_pages(client, staff.member, "clique.member.list", "members", {"clique_id": staff.id}, 3)
    assert [len(p) for p in pages] == [3, 1]
    listed = [(m["user"]["id"], m["role"]) for p in pages for m in p]
    assert listed == [(staff.member.id, "member"), (staff.moderator.id, "moderator"),
                      (staff.admin.id, "admin"), (staff.owner.id, "owner")]
    mods = await ok(await rest(client, staff.member, "clique.member.list",
                               {"clique_id": staff.id, "role": "moderator"}))
    assert [m["user"]["id"] for m in mods["members"]] == [staff.moderator.id]
    await refused(await rest(client, staff.member, "clique.member.list",
                             {"clique_id": staff.id, "role": "boss"}), 400, "invalid_input")
    public = await staffed(client)
    seen = await ok(await rest(client, public.outsider, "clique.member.list", {"clique_id": public.id}))
    assert len(seen["members"]) == 4
    await ok(await rest(client, public.owner, "clique.ban",
                        {"clique_id": public.id, "user_id": public.outsider.id}))
    error = await refused(await rest(client, public.outsider, "clique.member.list", {"clique_id": public.id}),
                          403, "forbidden")
    assert error["details"]["reason"] == "banned"



async def test_members_list_leaves_out_users_blocked_either_way(client: Client) -> None:
    # As the follower and friend lists do (storage/network_lists.graph_page).
    staff = await staffed(client)
    await ok(await rest(client, staff.admin, "user.block", {"user_id": staff.outsider.id}), 204)
    for viewer, hidden in ((staff.outsider, staff.admin), (staff.admin, None)):
        seen = await ok(await rest(client, viewer, "clique.member.list", {"clique_id": staff.id}))
        ids = {m["user"]["id"] for m in seen["members"]}
        expected = {staff.owner.id, staff.admin.id, staff.moderator.id, staff.member.id}
        assert ids == expected - ({hidden.id} if hidden else set())
    await ok(await rest(client, staff.member, "user.block", {"user_id": staff.moderator.id}), 204)
    seen = await ok(await rest(client, staff.moderator, "clique.member.list", {"clique_id": staff.id}))
    assert staff.member.id not in {m["user"]["id"] for m in seen["members"]}

async def test_account_deletion_leaves_every_clique(client: Client) -> None:
    owner, admin, member, fan = await people(client, 4)
    shared = await make_clique(client, owner)
    alone = await make_clique(client, owner, private=True)
    followed = await make_clique(client, admin)
    await add_members(client, owner, shared["id"], member, admin)
    await ok(await set_role(client, owner, shared["id"], admin, "admin"))
    await ok(await rest(client, owner, "clique.follow", {"clique_id": followed["id"]}))
    await ok(await rest(client, owner, "clique.invite", {"clique_id": alone["id"], "user_id": fan.id}))
    closed = await make_clique(client, admin, private=True)
    assert await join(client, owner, closed["id"]) == "requested"
    await ok(await rest(client, owner, "account.delete", {"password": owner.password}), 204)
    # The admin inherits the shared clique; the clique the owner was alone in is gone.
    seen = await card(client, admin, shared["id"])
    assert seen["owner_id"] == admin.id and seen["member_count"] == 2
    assert (await card(client, admin, followed["id"]))["follower_count"] == 0
    asked = await ok(await rest(client, admin, "clique.request.list", {"clique_id": closed["id"]}))
    assert asked["requests"] == []
    await refused(await rest(client, fan, "clique.get", {"clique_id": alone["id"]}), 404, "not_found")
    members = await ok(await rest(client, member, "clique.member.list", {"clique_id": shared["id"]}))
    assert owner.id not in {m["user"]["id"] for m in members["members"]}


async def test_scopes_and_authentication(client: Client, settings: Settings) -> None:
    alice = await signup(client)
    clique = await make_clique(client, alice)
    claims = jwt.decode(alice.access_token, options={"verify_signature": False})
    tokens = build_token_service(settings)
    read_only = tokens.issue(uuid.UUID(claims["sub"]), uuid.UUID(claims["sid"]), ["read:cliques"]).token
    other = tokens.issue(uuid.UUID(claims["sub"]), uuid.UUID(claims["sid"]), ["read:content"]).token
    reader = Account(**{**alice.__dict__, "access_token": read_only})
    outsider = Account(**{**alice.__dict__, "access_token": other})
    assert (await card(client, reader, clique["id"]))["id"] == clique["id"]
    for name, payload in [("clique.create", {"name": "x", "is_private": False}),
                          ("clique.join", {"clique_id": clique["id"]}),
                          ("clique.ban", {"clique_id": clique["id"], "user_id": str(uuid.uuid4())})]:
        error = await refused(await rest(client, reader, name, payload), 403, "forbidden")
        assert error["details"]["required_scope"] == "write:cliques"
    error = await refused(await rest(client, outsider, "clique.get", {"clique_id": clique["id"]}),
                          403, "forbidden")
    assert error["details"]["required_scope"] == "read:cliques"
    resp = await client.get(f"/v1/cliques/{clique['id']}")
    await refused(resp, 401, "unauthorized")


async def test_create_is_idempotent_per_key(client: Any) -> None:
    alice = await signup(client)
    headers = {**alice.headers, "Idempotency-Key": "make-once"}
    body = {"name": "Once", "is_private": False}
    first = await ok(await client.post("/v1/cliques", json=body, headers=headers), 201)
    again = await ok(await client.post("/v1/cliques", json=body, headers=headers), 201)
    assert again["id"] == first["id"]
    mine = await ok(await rest(client, alice, "clique.list_mine", {}))
    assert [c["id"] for c in mine["cliques"]].count(first["id"]) == 1
    await refused(await client.post("/v1/cliques", json={**body, "name": "Other"},
                                    headers=headers), 409, "conflict")
    # Concurrent creates with one key make one clique.
    racing = await asyncio.gather(*(
        rest(client, alice, "clique.create", {**body, "name": "Race", "idempotency_key": "race"})
        for _ in range(5)))
    ids = {(await ok(resp, 201))["id"] for resp in racing}
    assert len(ids) == 1
