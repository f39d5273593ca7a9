"""Clique invites, roles, ownership hand-over and moderation: remove, ban, unban, remove_item."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.conftest import SocketFactory, signup
from tests.handlers.clique_helpers import (
    Client,
    all_pages,
    card,
    join,
    make_clique,
    people,
    set_role,
    staffed,
)
from tests.handlers.conversation_helpers import fields_of, ok, refused, rest
from tests.handlers.social_helpers import until

ROLES = ("owner", "admin", "moderator", "member", "outsider")


async def invite(client: Client, actor: Any, clique_id: str, target: Any) -> Any:
    return await rest(client, actor, "clique.invite", {"clique_id": clique_id, "user_id": target.id})


async def test_invite_rules_public_and_private(client: Client) -> None:
    for private, allowed in ((False, {"owner", "admin", "moderator", "member"}),
                             (True, {"owner", "admin", "moderator"})):
        staff = await staffed(client, private=private)
        for role, actor in staff.by_role().items():
            target = await signup(client)
            resp = await invite(client, actor, staff.id, target)
            if role in allowed:
                made = await ok(resp)
                assert made["user_id"] == target.id and made["invited_by"] == actor.id
                assert (await card(client, target, staff.id))["viewer"]["invited"] is True
            else:
                error = await refused(resp, 403, "forbidden")
                assert error["details"]["reason"] == ("not_moderator" if private else "not_member")



async def test_going_private_drops_invites_only_moderators_could_make_now(client: Client) -> None:
    # Any member invites to a public clique; in a private one an invite skips approval,
    # so a member's invite must not outlive the switch (nor let its holder straight in).
    staff = await staffed(client, private=False)
    by_member, by_moderator = await people(client, 2)
    await ok(await invite(client, staff.member, staff.id, by_member))
    await ok(await invite(client, staff.moderator, staff.id, by_moderator))
    await ok(await rest(client, staff.admin, "clique.update",
                        {"clique_id": staff.id, "is_private": True}))
    assert (await card(client, by_member, staff.id))["viewer"]["invited"] is False
    assert await join(client, by_member, staff.id) == "requested"
    assert (await card(client, by_moderator, staff.id))["viewer"]["invited"] is True
    assert await join(client, by_moderator, staff.id) == "member"

async def test_invite_refusals(client: Client, connect_socket: SocketFactory) -> None:
    staff = await staffed(client, private=True)
    banned, blocker = await people(client, 2)
    error = await refused(await invite(client, staff.owner, staff.id, staff.owner), 400, "invalid_input")
    assert fields_of(error) == {"user_id"}
    await refused(await rest(client, staff.owner, "clique.invite",
                             {"clique_id": staff.id, "user_id": str(uuid.uuid4())}), 404, "not_found")
    error = await refused(await invite(client, staff.owner, staff.id, staff.member), 409, "conflict")
    assert error["details"]["reason"] == "already_member"
    await ok(await rest(client, staff.owner, "clique.ban", {"clique_id": staff.id, "user_id": banned.id}))
    error = await refused(await invite(client, staff.owner, staff.id, banned), 409, "conflict")
    assert error["details"]["reason"] == "banned"
    await ok(await rest(client, blocker, "user.block", {"user_id": staff.owner.id}), 204)
    error = await refused(await invite(client, staff.owner, staff.id, blocker), 403, "forbidden")
    assert error["details"]["reason"] == "blocked"
    # Over a socket too, with the same validation (a path parameter missing).
    sio = await connect_socket(staff.owner.access_token)
    reply = await sio.call("clique.invite", {"clique_id": staff.id}, timeout=10)
    assert reply["ok"] is False and reply["error"]["code"] == "invalid_input"
    assert fields_of(reply["error"]) == {"user_id"}
    await refused(await rest(client, staff.owner, "clique.invite",
                             {"clique_id": str(uuid.uuid4()), "user_id": banned.id}), 404, "not_found")


async def test_invite_notifies_lists_and_declines(client: Client) -> None:
    alice, bob, carol = await people(client, 3)
    first = await make_clique(client, alice, name="Chess club", private=True)
    second = await make_clique(client, alice, name="Go club")
    third = await make_clique(client, carol, name="Bridge club")
    made = await ok(await invite(client, alice, first["id"], bob))
    again = await ok(await invite(client, alice, first["id"], bob))
    assert again == made
    await ok(await invite(client, alice, second["id"], bob))
    await ok(await invite(client, carol, third["id"], bob))

    async def invites() -> list[dict[str, Any]]:
        page = await ok(await rest(client, bob, "notification.list", {}))
        return [n for n in page["notifications"] if n["kind"] == "clique_invite"]

    notes = await until(lambda: _at_least(invites, 3))
    chess = [n for n in notes if n["data"].get("clique_id") == first["id"]]
    assert len(chess) == 1 and chess[0]["actor_ids"] == [alice.id] and chess[0]["count"] == 1
    assert "Chess club" in chess[0]["title"] + chess[0]["body"]
    pages = await all_pages(client, bob, "clique.invite.list", "invites", {}, 2)
    listed = [i["clique"]["id"] for p in pages for i in p]
    assert [len(p) for p in pages] == [2, 1] and listed == [third["id"], second["id"], first["id"]]
    assert pages[0][0]["invited_by"]["id"] == carol.id and pages[0][0]["clique"]["viewer"]["invited"]
    await ok(await rest(client, bob, "clique.invite.decline", {"clique_id": first["id"]}), 204)
    await refused(await rest(client, bob, "clique.invite.decline", {"clique_id": first["id"]}),
                  404, "not_found")
    await refused(await rest(client, bob, "clique.invite.decline", {"clique_id": str(uuid.uuid4())}),
                  404, "not_found")
    assert await join(client, bob, first["id"]) == "requested"
    # Joining settles the invite; a deleted clique's invite is not listed.
    assert await join(client, bob, second["id"]) == "member"
    await ok(await rest(client, carol, "clique.delete", {"clique_id": third["id"]}), 204)
    assert (await ok(await rest(client, bob, "clique.invite.list", {})))["invites"] == []


async def _at_least(check: Any, n: int) -> list[dict[str, Any]] | None:
    found: list[dict[str, Any]] = await check()
    return found if len(found) >= n else None


async def test_invite_rate_limit(client: Client) -> None:
    alice, bob = await people(client, 2)
    clique = await make_clique(client, alice)
    for _ in range(50):
        await ok(await invite(client, alice, clique["id"], bob))
    error = await refused(await invite(client, alice, clique["id"], bob), 429, "rate_limited")
    assert error["details"]["retry_after"] >= 1


# (actor, target's role, new role) -> allowed?
ROLE_CASES = [
    ("owner", "member", "admin", True), ("owner", "admin", "member", True),
    ("owner", "moderator", "admin", True), ("admin", "member", "moderator", True),
    ("admin", "moderator", "member", True), ("admin", "member", "admin", False),
    ("admin", "admin2", "member", False), ("admin", "owner", "member", False),
    ("moderator", "member", "moderator", False), ("moderator", "member", "member", False),
    ("member", "moderator", "member", False), ("outsider", "member", "moderator", False),
]


@pytest.mark.parametrize(("actor", "target", "role", "allowed"), ROLE_CASES)
async def test_set_role_rules(client: Client, actor: str, target: str, role: str, allowed: bool) -> None:
    staff = await staffed(client)
    people_by_role = staff.by_role()
    if target == "admin2":
        second = await signup(client)
        await ok(await invite(client, staff.owner, staff.id, second))
        await join(client, second, staff.id)
        await ok(await set_role(client, staff.owner, staff.id, second, "admin"))
        people_by_role["admin2"] = second
    resp = await set_role(client, people_by_role[actor], staff.id, people_by_role[target], role)
    if allowed:
        changed = await ok(resp)
        assert changed["role"] == role and changed["user"]["id"] == people_by_role[target].id
    else:
        error = await refused(resp, 403, "forbidden")
        assert error["details"]["reason"] in {"rank", "not_admin"}


async def test_set_role_bad_input_and_unknown_member(client: Client) -> None:
    staff = await staffed(client)
    for payload, field in [({"role": "owner"}, "role"), ({"role": "king"}, "role"), ({}, "role")]:
        error = await refused(await rest(client, staff.owner, "clique.member.set_role", {
            "clique_id": staff.id, "user_id": staff.member.id, **payload}), 400, "invalid_input")
        assert field in fields_of(error)
    error = await refused(await set_role(client, staff.admin, staff.id, staff.admin, "member"),
                          400, "invalid_input")
    assert fields_of(error) == {"user_id"}
    await refused(await set_role(client, staff.owner, staff.id, staff.outsider, "admin"), 404, "not_found")


async def test_transfer_ownership(client: Client) -> None:
    staff = await staffed(client)
    for who in ("admin", "moderator", "member", "outsider"):
        target = staff.admin if who == "member" else staff.member
        error = await refused(await rest(client, staff.by_role()[who], "clique.transfer_ownership", {
            "clique_id": staff.id, "user_id": target.id}), 403, "forbidden")
        assert error["details"]["reason"] == "not_owner"
    await refused(await rest(client, staff.owner, "clique.transfer_ownership", {
        "clique_id": staff.id, "user_id": staff.outsider.id}), 404, "not_found")
    await refused(await rest(client, staff.owner, "clique.transfer_ownership", {
        "clique_id": staff.id, "user_id": staff.owner.id}), 400, "invalid_input")
    handed = await ok(await rest(client, staff.owner, "clique.transfer_ownership", {
        "clique_id": staff.id, "user_id": staff.member.id}))
    assert handed["owner_id"] == staff.member.id and handed["viewer"]["role"] == "admin"
    roles = await ok(await rest(client, staff.member, "clique.member.list", {"clique_id": staff.id}))
    assert {m["user"]["id"]: m["role"] for m in roles["members"]}[staff.member.id] == "owner"
    assert [m["role"] for m in roles["members"]].count("owner") == 1
    # The new owner now rules over the old one.
    await ok(await set_role(client, staff.member, staff.id, staff.owner, "member"))


@pytest.mark.parametrize(("actor", "target", "allowed"), [
    ("owner", "admin", True), ("owner", "member", True), ("admin", "moderator", True),
    ("moderator", "member", True), ("moderator", "moderator2", False), ("moderator", "admin", False),
    ("admin", "owner", False), ("member", "member2", False), ("outsider", "member", False),
])
async def test_remove_member_rules(client: Client, actor: str, target: str, allowed: bool) -> None:
    staff = await staffed(client)
    by_role = staff.by_role()
    for extra, role in (("moderator2", "moderator"), ("member2", "member")):
        if target == extra:
            person = await signup(client)
            await ok(await invite(client, staff.owner, staff.id, person))
            await join(client, person, staff.id)
            if role != "member":
                await ok(await set_role(client, staff.owner, staff.id, person, role))
            by_role[extra] = person
    before = (await card(client, staff.owner, staff.id))["member_count"]
    resp = await rest(client, by_role[actor], "clique.member.remove",
                      {"clique_id": staff.id, "user_id": by_role[target].id})
    if allowed:
        await ok(resp, 204)
        assert (await card(client, staff.owner, staff.id))["member_count"] == before - 1
        assert (await card(client, by_role[target], staff.id))["viewer"]["role"] is None
        assert await join(client, by_role[target], staff.id) == "member"
    else:
        await refused(resp, 403, "forbidden")
        assert (await card(client, staff.owner, staff.id))["member_count"] == before


async def test_remove_member_bad_input(client: Client) -> None:
    staff = await staffed(client)
    await refused(await rest(client, staff.owner, "clique.member.remove",
                             {"clique_id": staff.id, "user_id": staff.outsider.id}), 404, "not_found")
    error = await refused(await rest(client, staff.moderator, "clique.member.remove",
                                     {"clique_id": staff.id, "user_id": staff.moderator.id}),
                          400, "invalid_input")
    assert fields_of(error) == {"user_id"}
    await refused(await rest(client, staff.owner, "clique.member.remove",
                             {"clique_id": staff.id, "user_id": "nope"}), 400, "invalid_input")


async def test_ban_removes_everything_and_blocks_rejoining(client: Client) -> None:
    staff = await staffed(client)
    post = await ok(await rest(client, staff.owner, "item.create",
                               {"kind": "post", "body": "inside", "clique_id": staff.id}), 201)
    await ok(await rest(client, staff.member, "item.get", {"item_id": post["id"]}))
    await ok(await rest(client, staff.member, "clique.follow", {"clique_id": staff.id}))
    before = await card(client, staff.owner, staff.id)
    assert before["member_count"] == 4 and before["follower_count"] == 1
    banned = await ok(await rest(client, staff.moderator, "clique.ban",
                                 {"clique_id": staff.id, "user_id": staff.member.id, "reason": "spam"}))
    assert banned["user"]["id"] == staff.member.id and banned["banned_by"] == staff.moderator.id
    assert banned["reason"] == "spam"
    after = await card(client, staff.member, staff.id)
    assert after["member_count"] == 3 and after["follower_count"] == 0
    assert after["viewer"] == {"role": None, "following": False, "requested": False,
                               "invited": False, "banned": True}
    error = await refused(await rest(client, staff.member, "clique.join", {"clique_id": staff.id}),
                          403, "forbidden")
    assert error["details"]["reason"] == "banned"
    # The banned user no longer sees the clique's posts; others still do.
    await ok(await rest(client, staff.outsider, "item.get", {"item_id": post["id"]}))
    await refused(await rest(client, staff.member, "item.get", {"item_id": post["id"]}), 404, "not_found")
    # Banning again keeps the first ban.
    again = await ok(await rest(client, staff.owner, "clique.ban",
                                {"clique_id": staff.id, "user_id": staff.member.id}))
    assert again["banned_by"] == staff.moderator.id and again["reason"] == "spam"
    await ok(await rest(client, staff.moderator, "clique.unban",
                        {"clique_id": staff.id, "user_id": staff.member.id}), 204)
    await refused(await rest(client, staff.moderator, "clique.unban",
                             {"clique_id": staff.id, "user_id": staff.member.id}), 404, "not_found")
    assert await join(client, staff.member, staff.id) == "member"


async def test_ban_of_a_requester_and_rules(client: Client) -> None:
    staff = await staffed(client, private=True)
    requester = await signup(client)
    assert await join(client, requester, staff.id) == "requested"
    await ok(await rest(client, staff.moderator, "clique.ban",
                        {"clique_id": staff.id, "user_id": requester.id}))
    listed = await ok(await rest(client, staff.owner, "clique.request.list", {"clique_id": staff.id}))
    assert listed["requests"] == []
    for actor, target in (("moderator", "admin"), ("admin", "owner"), ("moderator", "moderator"),
                          ("member", "outsider"), ("outsider", "member")):
        resp = await rest(client, staff.by_role()[actor], "clique.ban",
                          {"clique_id": staff.id, "user_id": staff.by_role()[target].id})
        if actor == target:
            await refused(resp, 400, "invalid_input")
        else:
            await refused(resp, 403, "forbidden")
    for payload, code in [({"user_id": str(uuid.uuid4())}, "not_found"),
                          ({"user_id": staff.outsider.id, "reason": "r" * 501}, "invalid_input"),
                          ({"user_id": staff.outsider.id, "why": "x"}, "invalid_input")]:
        await refused(await rest(client, staff.owner, "clique.ban", {"clique_id": staff.id, **payload}),
                      404 if code == "not_found" else 400, code)
    edge = await ok(await rest(client, staff.owner, "clique.ban",
                               {"clique_id": staff.id, "user_id": staff.outsider.id, "reason": "r" * 500}))
    assert len(edge["reason"]) == 500
    for who in ("member", "outsider"):
        await refused(await rest(client, staff.by_role()[who], "clique.unban",
                                 {"clique_id": staff.id, "user_id": requester.id}), 403, "forbidden")


async def test_bans_list(client: Client) -> None:
    staff = await staffed(client)
    targets = await people(client, 3)
    for target in targets:
        await ok(await rest(client, staff.admin, "clique.ban", {"clique_id": staff.id, "user_id": target.id}))
    for who in ("member", "outsider"):
        error = await refused(await rest(client, staff.by_role()[who], "clique.ban.list",
                                         {"clique_id": staff.id}), 403, "forbidden")
        assert error["details"]["reason"] == "not_moderator"
    pages = await all_pages(client, staff.moderator, "clique.ban.list", "bans", {"clique_id": staff.id}, 2)
    assert [len(p) for p in pages] == [2, 1]
    assert [b["user"]["id"] for p in pages for b in p] == [t.id for t in reversed(targets)]
    await refused(await rest(client, staff.owner, "clique.ban.list", {"clique_id": staff.id, "cursor": "x"}),
                  400, "invalid_input")


async def test_remove_item_tombstones_clique_posts_and_comments(client: Client) -> None:
    staff = await staffed(client)
    items: dict[str, str] = {}
    for role in ("owner", "admin", "moderator", "member"):
        post = await ok(await rest(client, staff.by_role()[role], "item.create",
                                   {"kind": "post", "body": f"by {role}", "clique_id": staff.id}), 201)
        items[role] = post["id"]
    comment = await ok(await rest(client, staff.member, "item.create",
                                  {"kind": "comment", "body": "nice", "parent_id": items["owner"]}), 201)
    reply = await ok(await rest(client, staff.admin, "item.create",
                                {"kind": "reply", "body": "thanks", "parent_id": comment["id"]}), 201)
    elsewhere = await ok(await rest(client, staff.member, "item.create",
                                    {"kind": "post", "body": "my own page"}), 201)

    async def remove(actor: str, item_id: str) -> Any:
        return await rest(client, staff.by_role()[actor], "clique.item.remove",
                          {"clique_id": staff.id, "item_id": item_id})

    for actor in ("member", "outsider"):
        error = await refused(await remove(actor, items["member"]), 403, "forbidden")
        assert error["details"]["reason"] == "not_moderator"
    error = await refused(await remove("moderator", items["admin"]), 403, "forbidden")
    assert error["details"]["reason"] == "rank"
    await refused(await remove("admin", items["owner"]), 403, "forbidden")
    await refused(await remove("moderator", elsewhere["id"]), 404, "not_found")
    await refused(await remove("moderator", str(uuid.uuid4())), 404, "not_found")
    # Comments and replies belong to the clique through their root; ranks still apply.
    await refused(await remove("moderator", reply["id"]), 403, "forbidden")
    await ok(await remove("admin", reply["id"]), 204)
    await ok(await remove("moderator", comment["id"]), 204)
    await ok(await remove("moderator", items["member"]), 204)
    await ok(await remove("moderator", items["member"]), 204)
    await ok(await remove("moderator", items["moderator"]), 204)
    await ok(await remove("owner", items["admin"]), 204)
    for item_id in (comment["id"], reply["id"], items["member"], items["admin"]):
        gone = await ok(await rest(client, staff.outsider, "item.get", {"item_id": item_id}))
        assert gone["deleted"] is True and gone["body"] is None
    kept = await ok(await rest(client, staff.outsider, "item.get", {"item_id": items["owner"]}))
    assert kept["deleted"] is False
    other = await staffed(client)
    await refused(await rest(client, other.owner, "clique.item.remove",
                             {"clique_id": other.id, "item_id": items["owner"]}), 404, "not_found")
    await refused(await rest(client, staff.owner, "clique.item.remove",
                             {"clique_id": staff.id, "item_id": "x"}), 400, "invalid_input")
