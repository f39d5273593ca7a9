"""Conversation commands: groups, DMs, roles, leave, mute, blocks; input checks and who may do what."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config import Limits
from tests.conftest import Account, AppFactory, signup
from tests.handlers.conversation_helpers import (
    create_group,
    fields_of,
    ok,
    refused,
    rest,
)

Client = TestClient[Any, Any]
FOREVER = "9999-12-31T23:59:59.999999Z"


async def people(client: Client, n: int) -> list[Account]:
    return [await signup(client) for _ in range(n)]


async def view(client: Client, account: Account, conversation_id: str) -> dict[str, Any]:
    resp = await rest(client, account, "conversation.get", {"conversation_id": conversation_id})
    return dict(await ok(resp))


def roles(conversation: dict[str, Any]) -> dict[str, str]:
    return {m["user_id"]: m["role"] for m in conversation["members"]}


async def test_create_group_makes_the_creator_owner(client: Client) -> None:
    alice, bob, carol = await people(client, 3)
    resp = await rest(client, alice, "conversation.create_group", {
        "title": "  Trip  ", "member_ids": [bob.id, carol.id],
        "avatar_url": "https://img.example.com/a.png"})
    group = await ok(resp, 201)
    assert group["kind"] == "group" and group["title"] == "Trip"
    assert group["avatar_url"] == "https://img.example.com/a.png"
    assert group["member_count"] == 3 and group["role"] == "owner" and group["peer"] is None
    assert roles(group) == {alice.id: "owner", bob.id: "member", carol.id: "member"}
    assert group["unread"] == 0 and group["muted"] is False and group["last_message"] is None
    seen_by_bob = await view(client, bob, group["id"])
    assert seen_by_bob["role"] == "member" and seen_by_bob["id"] == group["id"]


@pytest.mark.parametrize(("payload", "field"), [
    ({"member_ids": ["{bob}"]}, "title"),
    ({"title": "", "member_ids": ["{bob}"]}, "title"),
    ({"title": "   ", "member_ids": ["{bob}"]}, "title"),
    ({"title": "t" * 101, "member_ids": ["{bob}"]}, "title"),
    ({"title": "a\x00b", "member_ids": ["{bob}"]}, "title"),
    ({"title": "a\nb", "member_ids": ["{bob}"]}, "title"),
    ({"title": "evil\u202etxt", "member_ids": ["{bob}"]}, "title"),
    ({"title": 5, "member_ids": ["{bob}"]}, "title"),
    ({"title": "t"}, "member_ids"),
    ({"title": "t", "member_ids": []}, "member_ids"),
    ({"title": "t", "member_ids": "{bob}"}, "member_ids"),
    ({"title": "t", "member_ids": ["nope"]}, "member_ids.0"),
    ({"title": "t", "member_ids": ["{bob}", "{bob}"]}, "member_ids"),
    ({"title": "t", "member_ids": ["{me}"]}, "member_ids"),
    ({"title": "t", "member_ids": [str(uuid.uuid4())]}, "member_ids"),
    ({"title": "t", "member_ids": ["{bob}"], "avatar_url": "ftp://x/y.png"}, "avatar_url"),
    ({"title": "t", "member_ids": ["{bob}"], "avatar_url": "https://"}, "avatar_url"),
    ({"title": "t", "member_ids": ["{bob}"], "kind": "direct"}, "kind"),
])
async def test_create_group_bad_input(client: Client, payload: dict[str, Any], field: str) -> None:
    alice, bob = await people(client, 2)
    ids = {"{bob}": bob.id, "{me}": alice.id}

    def fill(value: Any) -> Any:
        if isinstance(value, list):
            return [ids.get(v, v) if isinstance(v, str) else v for v in value]
        return ids.get(value, value) if isinstance(value, str) else value

    body = {k: fill(v) for k, v in payload.items()}
    error = await refused(await rest(client, alice, "conversation.create_group", body), 400,
                          "invalid_input")
    assert field in fields_of(error)
    listed = await ok(await rest(client, alice, "conversation.list"))
    assert listed["conversations"] == []


async def test_create_group_names_unknown_users(client: Client) -> None:
    alice, bob = await people(client, 2)
    ghost = str(uuid.uuid4())
    error = await refused(await rest(client, alice, "conversation.create_group",
                                     {"title": "t", "member_ids": [bob.id, ghost]}),
                          400, "invalid_input")
    assert error["details"]["user_ids"] == [ghost]


async def test_group_size_limit(make_client: AppFactory) -> None:
    client = await make_client(limits=Limits(group_members_max=3))
    alice, bob, carol, dave, erin = await people(client, 5)
    error = await refused(await rest(client, alice, "conversation.create_group", {
        "title": "t", "member_ids": [bob.id, carol.id, dave.id]}), 400, "invalid_input")
    assert fields_of(error) == {"member_ids"} and error["details"]["limit"] == 3

    group = await create_group(client, alice, bob)
    added = await ok(await rest(client, alice, "conversation.member.add",
                                {"conversation_id": group["id"], "user_ids": [carol.id]}))
    assert added["added"] == [carol.id] and added["conversation"]["member_count"] == 3
    error = await refused(await rest(client, alice, "conversation.member.add",
                                     {"conversation_id": group["id"], "user_ids": [dave.id]}),
                          409, "conflict")
    assert error["details"]["limit"] == 3 and error["details"]["member_count"] == 3
    # Members already in the group do not count against the limit.
    again = await ok(await rest(client, alice, "conversation.member.add",
                                {"conversation_id": group["id"], "user_ids": [bob.id, carol.id]}))
    assert again["added"] == []
    # A place freed by a leaver can be taken again.
    await ok(await rest(client, bob, "conversation.leave", {"conversation_id": group["id"]}), 204)
    added = await ok(await rest(client, alice, "conversation.member.add",
                                {"conversation_id": group["id"], "user_ids": [dave.id]}))
    assert added["conversation"]["member_count"] == 3
    error = await refused(await rest(client, alice, "conversation.member.add", {
        "conversation_id": group["id"], "user_ids": [erin.id, bob.id, carol.id]}),
        400, "invalid_input")
    assert fields_of(error) == {"user_ids"}


async def test_concurrent_adds_respect_the_limit(make_client: AppFactory) -> None:
    client = await make_client(limits=Limits(group_members_max=3))
    alice, bob, *others = await people(client, 8)
    for _ in range(3):
        group = await create_group(client, alice, bob)
        replies = await asyncio.gather(*(
            rest(client, alice, "conversation.member.add",
                 {"conversation_id": group["id"], "user_ids": [other.id]})
            for other in others))
        assert sorted(r.status for r in replies) == [200] + [409] * (len(others) - 1)
        seen = await view(client, alice, group["id"])
        assert seen["member_count"] == len(seen["members"]) == 3


async def test_users_who_blocked_you_cannot_be_added(client: Client) -> None:
    alice, bob, carol = await people(client, 3)
    await ok(await rest(client, bob, "user.block", {"user_id": alice.id}), 204)
    error = await refused(await rest(client, alice, "conversation.create_group",
                                     {"title": "t", "member_ids": [bob.id, carol.id]}),
                          403, "forbidden")
    assert error["details"]["user_ids"] == [bob.id]
    assert (await ok(await rest(client, alice, "conversation.list")))["conversations"] == []

    group = await create_group(client, alice, carol)
    error = await refused(await rest(client, alice, "conversation.member.add",
                                     {"conversation_id": group["id"], "user_ids": [bob.id]}),
                          403, "forbidden")
    assert error["details"]["user_ids"] == [bob.id]
    # Blocking is one way: bob, who blocked alice, may still be added by someone else.
    await ok(await rest(client, carol, "user.block", {"user_id": alice.id}), 204)
    await create_group(client, bob, alice)
    await ok(await rest(client, bob, "user.unblock", {"user_id": alice.id}), 204)
    added = await ok(await rest(client, alice, "conversation.member.add",
                                {"conversation_id": group["id"], "user_ids": [bob.id]}))
    assert added["added"] == [bob.id]


async def test_open_direct_is_one_conversation_per_pair(client: Client) -> None:
    alice, bob, carol = await people(client, 3)
    first = await ok(await rest(client, alice, "conversation.open_direct", {"user_id": bob.id}))
    assert first["kind"] == "direct" and first["peer"] == bob.id and first["title"] is None
    assert first["member_count"] == 2 and roles(first) == {alice.id: "member", bob.id: "member"}
    again = await ok(await rest(client, alice, "conversation.open_direct", {"user_id": bob.id}))
    reverse = await ok(await rest(client, bob, "conversation.open_direct", {"user_id": alice.id}))
    assert again["id"] == reverse["id"] == first["id"] and reverse["peer"] == alice.id
    other = await ok(await rest(client, alice, "conversation.open_direct", {"user_id": carol.id}))
    assert other["id"] != first["id"]


async def test_open_direct_concurrently_gives_one_conversation(client: Client) -> None:
    for _ in range(3):
        alice, bob = await people(client, 2)
        replies = await asyncio.gather(
            rest(client, alice, "conversation.open_direct", {"user_id": bob.id}),
            rest(client, bob, "conversation.open_direct", {"user_id": alice.id}),
            rest(client, alice, "conversation.open_direct", {"user_id": bob.id}))
        ids = {(await ok(r))["id"] for r in replies}
        assert len(ids) == 1
        listed = await ok(await rest(client, bob, "conversation.list"))
        assert [c["id"] for c in listed["conversations"]] == list(ids)


@pytest.mark.parametrize(("payload", "status", "code", "field"), [
    ({}, 400, "invalid_input", "user_id"),
    ({"user_id": "nope"}, 400, "invalid_input", "user_id"),
    ({"user_id": "{me}"}, 400, "invalid_input", "user_id"),
    ({"user_id": "{bob}", "title": "x"}, 400, "invalid_input", "title"),
    ({"user_id": str(uuid.uuid4())}, 404, "not_found", None),
])
async def test_open_direct_refusals(client: Client, payload: dict[str, Any], status: int,
                                    code: str, field: str | None) -> None:
    alice, bob = await people(client, 2)
    ids = {"{me}": alice.id, "{bob}": bob.id}
    body = {k: ids.get(v, v) for k, v in payload.items()}
    error = await refused(await rest(client, alice, "conversation.open_direct", body), status, code)
    if field is not None:
        assert field in fields_of(error)


async def test_open_direct_with_a_deleted_user_is_not_found(client: Client) -> None:
    alice, bob = await people(client, 2)
    await ok(await client.delete("/v1/users/me", json={"password": bob.password},
                                 headers=bob.headers), 204)
    await refused(await rest(client, alice, "conversation.open_direct", {"user_id": bob.id}),
                  404, "not_found")


async def test_open_direct_refused_when_blocked_either_way(client: Client) -> None:
    alice, bob = await people(client, 2)
    dm = await ok(await rest(client, alice, "conversation.open_direct", {"user_id": bob.id}))
    await ok(await rest(client, bob, "user.block", {"user_id": alice.id}), 204)
    for actor, other in ((alice, bob), (bob, alice)):
        error = await refused(await rest(client, actor, "conversation.open_direct",
                                         {"user_id": other.id}), 403, "forbidden")
        assert error["details"] == {"reason": "blocked"}
    await ok(await rest(client, bob, "user.unblock", {"user_id": alice.id}), 204)
    reopened = await ok(await rest(client, alice, "conversation.open_direct", {"user_id": bob.id}))
    assert reopened["id"] == dm["id"]


async def test_update_title_and_avatar(client: Client) -> None:
    alice, bob, carol = await people(client, 3)
    group = await create_group(client, alice, bob, carol)
    cid = group["id"]
    updated = await ok(await rest(client, alice, "conversation.update", {
        "conversation_id": cid, "title": "New", "avatar_url": "https://x.example/a.png"}))
    assert updated["title"] == "New" and updated["avatar_url"] == "https://x.example/a.png"
    await refused(await rest(client, bob, "conversation.update",
                             {"conversation_id": cid, "title": "Mine"}), 403, "forbidden")
    await ok(await rest(client, alice, "conversation.member.set_role",
                        {"conversation_id": cid, "user_id": bob.id, "role": "admin"}))
    by_admin = await ok(await rest(client, bob, "conversation.update",
                                   {"conversation_id": cid, "avatar_url": None}))
    assert by_admin["avatar_url"] is None and by_admin["title"] == "New"
    assert (await view(client, carol, cid))["title"] == "New"


@pytest.mark.parametrize(("payload", "field"), [
    ({}, "(body)"),
    ({"title": None}, "(body)"),
    ({"title": ""}, "title"),
    ({"title": "x" * 101}, "title"),
    ({"title": "a\x07"}, "title"),
    ({"avatar_url": "javascript:alert(1)"}, "avatar_url"),
    ({"title": "t", "member_count": 3}, "member_count"),
])
async def test_update_bad_input(client: Client, payload: dict[str, Any], field: str) -> None:
    alice, bob = await people(client, 2)
    group = await create_group(client, alice, bob)
    error = await refused(await rest(client, alice, "conversation.update",
                                     {"conversation_id": group["id"], **payload}),
                          400, "invalid_input")
    assert field in fields_of(error)


async def test_direct_conversations_cannot_be_managed_or_left(client: Client) -> None:
    alice, bob, carol = await people(client, 3)
    dm = await ok(await rest(client, alice, "conversation.open_direct", {"user_id": bob.id}))
    cid = dm["id"]
    for name, payload in (
        ("conversation.update", {"title": "x"}),
        ("conversation.member.add", {"user_ids": [carol.id]}),
        ("conversation.member.remove", {"user_id": bob.id}),
        ("conversation.member.set_role", {"user_id": bob.id, "role": "admin"}),
        ("conversation.leave", {}),
    ):
        error = await refused(await rest(client, alice, name, {"conversation_id": cid, **payload}),
                              403, "forbidden")
        assert error["details"]["reason"] == "direct_conversation", name
    assert (await view(client, bob, cid))["member_count"] == 2


@pytest.mark.parametrize(("payload", "field"), [
    ({"user_ids": []}, "user_ids"),
    ({"user_ids": ["x"]}, "user_ids.0"),
    ({"user_ids": ["{bob}", "{bob}"]}, "user_ids"),
    ({}, "user_ids"),
    ({"user_ids": [str(uuid.uuid4())]}, "user_ids"),
])
async def test_add_members_bad_input(client: Client, payload: dict[str, Any], field: str) -> None:
    alice, bob, carol = await people(client, 3)
    group = await create_group(client, alice, carol)
    body = {k: [bob.id if x == "{bob}" else x for x in v] for k, v in payload.items()}
    error = await refused(await rest(client, alice, "conversation.member.add",
                                     {"conversation_id": group["id"], **body}),
                          400, "invalid_input")
    assert field in fields_of(error)


async def test_only_admins_add_and_remove(client: Client) -> None:
    alice, bob, carol, dave, erin = await people(client, 5)
    cid = (await create_group(client, alice, bob, carol))["id"]
    await refused(await rest(client, bob, "conversation.member.add",
                             {"conversation_id": cid, "user_ids": [dave.id]}), 403, "forbidden")
    await refused(await rest(client, bob, "conversation.member.remove",
                             {"conversation_id": cid, "user_id": carol.id}), 403, "forbidden")
    await ok(await rest(client, alice, "conversation.member.set_role",
                        {"conversation_id": cid, "user_id": bob.id, "role": "admin"}))
    added = await ok(await rest(client, bob, "conversation.member.add",
                                {"conversation_id": cid, "user_ids": [dave.id, erin.id]}))
    assert set(added["added"]) == {dave.id, erin.id}
    await ok(await rest(client, bob, "conversation.member.remove",
                        {"conversation_id": cid, "user_id": dave.id}), 204)
    assert dave.id not in roles(await view(client, alice, cid))


async def test_remove_member_rules(client: Client) -> None:
    alice, bob, carol, dave, erin = await people(client, 5)
    cid = (await create_group(client, alice, bob, carol, dave))["id"]
    for admin in (bob, carol):
        await ok(await rest(client, alice, "conversation.member.set_role",
                            {"conversation_id": cid, "user_id": admin.id, "role": "admin"}))

    async def remove(actor: Account, target: str) -> Any:
        return await rest(client, actor, "conversation.member.remove",
                          {"conversation_id": cid, "user_id": target})

    error = await refused(await remove(bob, alice.id), 403, "forbidden")
    assert error["details"]["reason"] == "owner"
    error = await refused(await remove(bob, carol.id), 403, "forbidden")
    assert error["details"]["reason"] == "not_owner"
    await refused(await remove(bob, erin.id), 404, "not_found")
    await refused(await remove(bob, str(uuid.uuid4())), 404, "not_found")
    error = await refused(await remove(bob, bob.id), 400, "invalid_input")
    assert fields_of(error) == {"user_id"}
    error = await refused(await rest(client, bob, "conversation.member.remove",
                                     {"conversation_id": cid, "user_id": "nope"}),
                          400, "invalid_input")
    assert fields_of(error) == {"user_id"}
    await ok(await remove(alice, carol.id), 204)
    await ok(await remove(bob, dave.id), 204)
    await refused(await remove(bob, dave.id), 404, "not_found")
    assert roles(await view(client, alice, cid)) == {alice.id: "owner", bob.id: "admin"}


async def test_set_role_and_hand_over(client: Client) -> None:
    alice, bob, carol = await people(client, 3)
    cid = (await create_group(client, alice, bob, carol))["id"]

    async def set_role(actor: Account, target: str, role: str) -> Any:
        return await rest(client, actor, "conversation.member.set_role",
                          {"conversation_id": cid, "user_id": target, "role": role})

    await ok(await set_role(alice, bob.id, "admin"))
    error = await refused(await set_role(bob, carol.id, "admin"), 403, "forbidden")
    assert error["details"]["reason"] == "not_owner"
    assert fields_of(await refused(await set_role(alice, carol.id, "king"), 400,
                                   "invalid_input")) == {"role"}
    assert fields_of(await refused(await set_role(alice, alice.id, "member"), 400,
                                   "invalid_input")) == {"user_id"}
    await refused(await set_role(alice, str(uuid.uuid4()), "admin"), 404, "not_found")
    handed = await ok(await set_role(alice, carol.id, "owner"))
    assert roles(handed) == {alice.id: "admin", bob.id: "admin", carol.id: "owner"}
    assert handed["role"] == "admin"
    await ok(await set_role(carol, bob.id, "member"))
    assert roles(await view(client, bob, cid))[bob.id] == "member"


async def test_owner_leaving_hands_over_to_the_longest_standing_admin(client: Client) -> None:
    alice, bob, carol, dave = await people(client, 4)
    cid = (await create_group(client, alice, bob))["id"]
    await ok(await rest(client, alice, "conversation.member.add",
                        {"conversation_id": cid, "user_ids": [carol.id]}))
    await ok(await rest(client, alice, "conversation.member.add",
                        {"conversation_id": cid, "user_ids": [dave.id]}))
    for admin in (dave, carol):
        await ok(await rest(client, alice, "conversation.member.set_role",
                            {"conversation_id": cid, "user_id": admin.id, "role": "admin"}))
    await ok(await rest(client, alice, "conversation.leave", {"conversation_id": cid}), 204)
    # carol joined before dave; bob, the oldest member, is no admin.
    assert roles(await view(client, bob, cid)) == {bob.id: "member", carol.id: "owner",
                                                   dave.id: "admin"}
    await ok(await rest(client, carol, "conversation.leave", {"conversation_id": cid}), 204)
    assert roles(await view(client, bob, cid)) == {bob.id: "member", dave.id: "owner"}
    await ok(await rest(client, dave, "conversation.leave", {"conversation_id": cid}), 204)
    assert roles(await view(client, bob, cid)) == {bob.id: "owner"}
    await ok(await rest(client, bob, "conversation.leave", {"conversation_id": cid}), 204)
    for gone in (alice, bob, carol, dave):
        await refused(await rest(client, gone, "conversation.get", {"conversation_id": cid}),
                      404, "not_found")


async def test_owner_leaving_without_admins_hands_over_to_the_longest_standing_member(
    client: Client,
) -> None:
    alice, bob, carol = await people(client, 3)
    cid = (await create_group(client, alice, bob))["id"]
    await ok(await rest(client, alice, "conversation.member.add",
                        {"conversation_id": cid, "user_ids": [carol.id]}))
    await ok(await rest(client, alice, "conversation.leave", {"conversation_id": cid}), 204)
    assert roles(await view(client, carol, cid)) == {bob.id: "owner", carol.id: "member"}


async def test_mute_and_unmute(client: Client) -> None:
    alice, bob = await people(client, 2)
    cid = (await create_group(client, alice, bob))["id"]
    until = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    muted = await ok(await rest(client, alice, "conversation.mute",
                                {"conversation_id": cid, "until": until.isoformat()}))
    assert muted["muted"] is True
    assert datetime.fromisoformat(muted["muted_until"]) == until
    seen = await view(client, alice, cid)
    assert seen["muted"] is True and datetime.fromisoformat(seen["muted_until"]) == until
    assert (await view(client, bob, cid))["muted"] is False
    forever = await ok(await rest(client, alice, "conversation.mute", {"conversation_id": cid}))
    assert forever["muted"] is True and forever["muted_until"] == FOREVER
    listed = await ok(await rest(client, alice, "conversation.list"))
    assert listed["conversations"][0]["muted"] is True
    assert listed["conversations"][0]["muted_until"] == FOREVER
    unmuted = await ok(await rest(client, alice, "conversation.unmute", {"conversation_id": cid}))
    assert unmuted == {"conversation_id": cid, "muted": False, "muted_until": None}
    assert (await view(client, alice, cid))["muted"] is False
    # Muting a DM is allowed too.
    dm = await ok(await rest(client, alice, "conversation.open_direct", {"user_id": bob.id}))
    await ok(await rest(client, bob, "conversation.mute", {"conversation_id": dm["id"]}))


@pytest.mark.parametrize(("payload", "field"), [
    ({"until": "2001-01-01T00:00:00Z"}, "until"),
    ({"until": "2999-01-01T00:00:00"}, "until"),
    ({"until": "tomorrow"}, "until"),
    ({"until": None, "extra": 1}, "extra"),
    ({"conversation_id": "nope"}, "conversation_id"),
])
async def test_mute_bad_input(client: Client, payload: dict[str, Any], field: str) -> None:
    alice, bob = await people(client, 2)
    cid = (await create_group(client, alice, bob))["id"]
    error = await refused(await rest(client, alice, "conversation.mute",
                                     {"conversation_id": cid, **payload}), 400, "invalid_input")
    assert field in fields_of(error)


CONVERSATION_COMMANDS: list[tuple[str, dict[str, Any]]] = [
    ("conversation.get", {}),
    ("conversation.update", {"title": "x"}),
    ("conversation.member.add", {"user_ids": ["{other}"]}),
    ("conversation.member.remove", {"user_id": "{other}"}),
    ("conversation.member.set_role", {"user_id": "{other}", "role": "admin"}),
    ("conversation.leave", {}),
    ("conversation.mute", {}),
    ("conversation.unmute", {}),
    ("message.list", {}),
    ("receipt.mark_read", {"seq": 1}),
]


@pytest.mark.parametrize("who", ["stranger", "removed", "left", "unknown_conversation"])
async def test_non_members_get_not_found_from_every_command(client: Client, who: str) -> None:
    alice, bob, carol, outsider = await people(client, 4)
    cid = (await create_group(client, alice, bob, carol))["id"]
    actor = outsider
    if who == "removed":
        await ok(await rest(client, alice, "conversation.member.remove",
                            {"conversation_id": cid, "user_id": bob.id}), 204)
        actor = bob
    elif who == "left":
        await ok(await rest(client, bob, "conversation.leave", {"conversation_id": cid}), 204)
        actor = bob
    elif who == "unknown_conversation":
        actor, cid = alice, str(uuid.uuid4())
    for name, payload in CONVERSATION_COMMANDS:
        body = {k: ([carol.id] if v == ["{other}"] else carol.id if v == "{other}" else v)
                for k, v in payload.items()}
        error = await refused(await rest(client, actor, name, {"conversation_id": cid, **body}),
                              404, "not_found")
        assert "conversation" in error["message"], (name, error)
    if who != "unknown_conversation":
        listed = await ok(await rest(client, actor, "conversation.list"))
        assert cid not in [c["id"] for c in listed["conversations"]]
        # Nothing was changed by the refused calls.
        seen = await view(client, alice, cid)
        assert seen["title"] == "group" and roles(seen)[carol.id] == "member"


async def test_a_member_who_left_can_be_added_back(client: Client) -> None:
    alice, bob = await people(client, 2)
    cid = (await create_group(client, alice, bob))["id"]
    await ok(await rest(client, bob, "conversation.mute", {"conversation_id": cid}))
    await ok(await rest(client, bob, "conversation.leave", {"conversation_id": cid}), 204)
    await refused(await rest(client, bob, "conversation.leave", {"conversation_id": cid}),
                  404, "not_found")
    added = await ok(await rest(client, alice, "conversation.member.add",
                                {"conversation_id": cid, "user_ids": [bob.id]}))
    assert added["added"] == [bob.id] and added["conversation"]["member_count"] == 2
    back = await view(client, bob, cid)
    assert back["role"] == "member" and back["muted"] is False


@pytest.mark.parametrize(("name", "payload", "field"), [
    ("conversation.get", {"conversation_id": "nope"}, "conversation_id"),
    ("conversation.leave", {"conversation_id": "nope"}, "conversation_id"),
    ("conversation.unmute", {"conversation_id": "nope"}, "conversation_id"),
    ("conversation.list", {"limit": 0}, "limit"),
    ("conversation.list", {"limit": 51}, "limit"),
    ("conversation.list", {"limit": "many"}, "limit"),
    ("conversation.list", {"cursor": "!!!"}, "cursor"),
    ("conversation.list", {"cursor": "bm90IGEgY3Vyc29y"}, "cursor"),
    ("conversation.list", {"cursor": "x" * 201}, "cursor"),
])
async def test_bad_ids_and_list_input(client: Client, name: str, payload: dict[str, Any],
                                      field: str) -> None:
    alice = await signup(client)
    error = await refused(await rest(client, alice, name, payload), 400, "invalid_input")
    assert field in fields_of(error)


async def test_creating_conversations_is_rate_limited(make_client: Any) -> None:
    from config import Rates

    node = await make_client(rates=Rates(conversation_create=(2, 3600)))
    alice, bob, carol = [await signup(node) for _ in range(3)]
    headers = {"Authorization": f"Bearer {alice.access_token}"}
    resp = await node.post("/v1/conversations/direct", json={"user_id": bob.id}, headers=headers)
    assert resp.status == 200
    resp = await node.post("/v1/conversations/groups", json={"title": "g", "member_ids": [carol.id]},
                           headers=headers)
    assert resp.status == 201
    resp = await node.post("/v1/conversations/direct", json={"user_id": carol.id}, headers=headers)
    assert resp.status == 429
    assert (await resp.json())["error"]["code"] == "rate_limited"
