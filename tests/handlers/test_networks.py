"""The social graph over REST and sockets: follow, private accounts, friends, blocks, limits."""

from __future__ import annotations

import asyncio
import uuid

import jwt
import pytest

from config import Rates, Settings
from server.resources import SERVICES
from tests.conftest import AppFactory, SocketFactory, signup
from tests.handlers.conversation_helpers import fields_of, ok, refused, rest
from tests.handlers.network_helpers import Client, counts, fake_users, follow, ids, make_private, profile
from tests.handlers.social_helpers import notes_of, sql, until

# Every graph command that names another user, with the status it answers on success.
USER_COMMANDS = {
    "user.follow": 200, "user.unfollow": 204, "follower.remove": 204,
    "follow_request.approve": 204, "follow_request.reject": 204,
    "friend_request.send": 200, "friend_request.accept": 200, "friend_request.decline": 204,
    "friend_request.cancel": 204,
    "friend.remove": 204, "user.mute": 200, "user.unmute": 200,
    "close_friend.add": 204, "close_friend.remove": 204,
}


@pytest.fixture
async def client(make_client: AppFactory) -> Client:
    # Some tests need more than the default 20 sign-ups per address and hour.
    return await make_client(rates=Rates(signup=(1000, 3600)))


# --- input and refusals ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(USER_COMMANDS))
async def test_bad_input_self_and_unknown_users(client: Client, name: str) -> None:
    alice = await signup(client)
    for bad in ("not-a-uuid", alice.id):
        error = await refused(await rest(client, alice, name, {"user_id": bad}), 400, "invalid_input")
        assert fields_of(error) == {"user_id"}
    error = await refused(await rest(client, alice, name, {"user_id": alice.id}), 400,
                          "invalid_input")
    assert error["details"]["fields"][0]["type"] == "self"
    await refused(await rest(client, alice, name, {"user_id": str(uuid.uuid4())}), 404, "not_found")
    bob = await signup(client)
    error = await refused(await rest(client, alice, name, {"user_id": bob.id, "extra": 1}), 400,
                          "invalid_input")
    assert fields_of(error) == {"extra"}
    resp = await client.request(COMMAND_METHODS[name], PATHS[name].format(bob.id))
    await refused(resp, 401, "unauthorized")


COMMAND_METHODS = {name: m for name, m in (
    ("user.follow", "PUT"), ("user.unfollow", "DELETE"), ("follower.remove", "DELETE"),
    ("follow_request.approve", "POST"), ("follow_request.reject", "DELETE"),
    ("friend_request.send", "PUT"), ("friend_request.accept", "POST"), ("friend_request.decline", "DELETE"),
    ("friend_request.cancel", "DELETE"), ("friend.remove", "DELETE"), ("user.mute", "PUT"),
    ("user.unmute", "DELETE"), ("close_friend.add", "PUT"), ("close_friend.remove", "DELETE"))}
PATHS = {
    "user.follow": "/v1/users/me/following/{}", "user.unfollow": "/v1/users/me/following/{}",
    "follower.remove": "/v1/users/me/followers/{}",
    "follow_request.approve": "/v1/users/me/follow_requests/{}/approve",
    "follow_request.reject": "/v1/users/me/follow_requests/{}",
    "friend_request.send": "/v1/users/me/friend_requests/sent/{}",
    "friend_request.accept": "/v1/users/me/friend_requests/{}/accept",
    "friend_request.decline": "/v1/users/me/friend_requests/{}",
    "friend_request.cancel": "/v1/users/me/friend_requests/sent/{}",
    "friend.remove": "/v1/users/me/friends/{}",
    "user.mute": "/v1/users/me/mutes/{}", "user.unmute": "/v1/users/me/mutes/{}",
    "close_friend.add": "/v1/users/me/close_friends/{}",
    "close_friend.remove": "/v1/users/me/close_friends/{}",
}


async def test_deleted_users_are_unknown(client: Client) -> None:
    alice, bob = await signup(client), await signup(client)
    await ok(await client.delete("/v1/users/me", json={"password": bob.password},
                                 headers=bob.headers), 204)
    for name in ("user.follow", "friend_request.send", "user.mute", "close_friend.add"):
        await refused(await rest(client, alice, name, {"user_id": bob.id}), 404, "not_found")


async def test_a_token_without_the_social_scopes_is_refused(client: Client) -> None:
    alice, bob = await signup(client), await signup(client)
    claims = jwt.decode(alice.access_token, options={"verify_signature": False})
    token = client.app[SERVICES].tokens.issue(uuid.UUID(claims["sub"]), uuid.UUID(claims["sid"]),
                                              ["read:profile"]).token
    headers = {"Authorization": f"Bearer {token}"}
    for method, path, scope in (("PUT", f"/v1/users/me/following/{bob.id}", "write:network"),
                                ("GET", f"/v1/users/{bob.id}/followers", "read:network")):
        error = await refused(await client.request(method, path, headers=headers), 403, "forbidden")
        assert error["details"]["required_scope"] == scope


# --- follow ----------------------------------------------------------------------------------


async def test_follow_and_unfollow_are_idempotent_and_counted(client: Client) -> None:
    alice, bob = await signup(client), await signup(client)
    for _ in range(2):
        assert await follow(client, alice, bob) == "following"
    assert await counts(client, bob) == (1, 0, 0)
    assert await counts(client, alice) == (0, 1, 0)
    seen = await profile(client, alice, bob)
    assert seen["follower_count"] == 1 and seen["is_private"] is False
    assert seen["relationship"]["following"] is True
    assert seen["relationship"]["followed_by"] is False
    assert (await profile(client, bob, alice))["relationship"]["followed_by"] is True
    assert await ids(client, bob, "follower.list", user_id=bob.id) == [alice.id]
    assert await ids(client, bob, "following.list", user_id=alice.id) == [bob.id]
    for _ in range(2):
        await ok(await rest(client, alice, "user.unfollow", {"user_id": bob.id}), 204)
    assert await counts(client, bob) == (0, 0, 0)
    assert await counts(client, alice) == (0, 0, 0)
    assert await ids(client, bob, "follower.list", user_id=bob.id) == []


async def test_follow_over_a_socket(client: Client, connect_socket: SocketFactory) -> None:
    alice, bob = await signup(client), await signup(client)
    sio = await connect_socket(alice.access_token)
    reply = await sio.call("user.follow", {"user_id": bob.id}, timeout=5)
    assert reply == {"ok": True, "data": {"user_id": bob.id, "status": "following"}}
    reply = await sio.call("user.follow", {"user_id": alice.id}, timeout=5)
    assert reply["ok"] is False and reply["error"]["code"] == "invalid_input"


async def test_remove_a_follower(client: Client) -> None:
    alice, bob = await signup(client), await signup(client)
    await follow(client, alice, bob)
    for _ in range(2):
        await ok(await rest(client, bob, "follower.remove", {"user_id": alice.id}), 204)
    assert await counts(client, bob) == (0, 0, 0)
    assert await counts(client, alice) == (0, 0, 0)


async def test_follows_are_rate_limited(client: Client) -> None:
    alice, bob = await signup(client), await signup(client)
    for _ in range(60):
        await ok(await rest(client, alice, "user.follow", {"user_id": bob.id}))
    resp = await rest(client, alice, "user.follow", {"user_id": bob.id})
    error = await refused(resp, 429, "rate_limited")
    assert error["details"]["retry_after"] >= 1 and "Retry-After" in resp.headers
    assert await counts(client, bob) == (1, 0, 0)


async def test_concurrent_follows_count_once_each(client: Client) -> None:
    star = await signup(client)
    fans = [await signup(client) for _ in range(20)]
    statuses = await asyncio.gather(*(follow(client, fan, star) for fan in fans))
    assert statuses == ["following"] * 20
    assert await counts(client, star) == (20, 0, 0)
    eager = fans[0]
    await ok(await rest(client, eager, "user.unfollow", {"user_id": star.id}), 204)
    await asyncio.gather(*(follow(client, eager, star) for _ in range(5)))
    assert await counts(client, star) == (20, 0, 0)
    assert await counts(client, eager) == (0, 1, 0)
    # Crossing follows of two users lock both rows in one order: no deadlock, both counted.
    a, b = fans[1], fans[2]
    await asyncio.gather(follow(client, a, b), follow(client, b, a))
    assert await counts(client, a) == (1, 2, 0)


# --- private accounts ------------------------------------------------------------------------


async def test_private_account_request_flow(client: Client) -> None:
    alice, bob, carol, dave = [await signup(client) for _ in range(4)]
    assert (await make_private(client, bob))["is_private"] is True
    for _ in range(2):
        assert await follow(client, alice, bob) == "requested"
    assert await counts(client, bob) == (0, 0, 0)
    rel = (await profile(client, alice, bob))["relationship"]
    assert rel["follow_requested"] is True and rel["following"] is False
    assert (await profile(client, bob, alice))["relationship"]["follow_request_received"] is True
    assert await follow(client, carol, bob) == "requested"
    assert await ids(client, bob, "follow_request.list") == [carol.id, alice.id]
    assert await ids(client, alice, "follow_request.list_sent") == [bob.id]
    # Approve: a follower now; approving again is fine; no request is not_found.
    for _ in range(2):
        await ok(await rest(client, bob, "follow_request.approve", {"user_id": alice.id}), 204)
    assert await counts(client, bob) == (1, 0, 0)
    assert await ids(client, bob, "follower.list", user_id=bob.id) == [alice.id]
    await refused(await rest(client, bob, "follow_request.approve", {"user_id": dave.id}), 404,
                  "not_found")
    # Reject, twice; then a withdrawn request.
    for _ in range(2):
        await ok(await rest(client, bob, "follow_request.reject", {"user_id": carol.id}), 204)
    assert await ids(client, bob, "follow_request.list") == []
    assert await follow(client, dave, bob) == "requested"
    await ok(await rest(client, dave, "user.unfollow", {"user_id": bob.id}), 204)
    assert await ids(client, bob, "follow_request.list") == []
    assert await ids(client, dave, "follow_request.list_sent") == []
    assert await counts(client, bob) == (1, 0, 0)


async def test_going_public_approves_every_pending_request(client: Client) -> None:
    alice, bob, carol = [await signup(client) for _ in range(3)]
    await make_private(client, bob)
    await follow(client, alice, bob)
    await follow(client, carol, bob)
    public = await make_private(client, bob, False)
    assert public["is_private"] is False and public["follower_count"] == 2
    assert sorted(await ids(client, bob, "follower.list", user_id=bob.id)) == sorted(
        [alice.id, carol.id])
    assert await ids(client, bob, "follow_request.list") == []
    assert await counts(client, alice) == (0, 1, 0)
    for requester in (alice, carol):  # each approved requester is told
        [note] = await until(notes_of(client, requester))
        assert note["data"]["accepted"] is True and note["actor_ids"] == [bob.id]
    error = await refused(await client.patch("/v1/users/me", json={"is_private": None},
                                             headers=bob.headers), 400, "invalid_input")
    assert "is_private cannot be removed" in error["details"]["fields"][0]["message"]


async def test_follow_notifications(client: Client) -> None:
    alice, bob, carol = [await signup(client) for _ in range(3)]
    await follow(client, alice, bob)
    [note] = await until(notes_of(client, bob))
    assert note["kind"] == "follow" and note["actor_ids"] == [alice.id]
    assert note["group_key"] == f"follow:{bob.id}"
    assert note["title"] == f"{alice.username} followed you"
    assert note["subject"]["id"] == alice.id
    await make_private(client, carol)
    await follow(client, alice, carol)
    [asked] = await until(notes_of(client, carol))
    assert asked["kind"] == "follow" and asked["data"]["request"] is True
    assert asked["title"] == f"{alice.username} asked to follow you"
    await ok(await rest(client, carol, "follow_request.approve", {"user_id": alice.id}), 204)
    [accepted] = await until(notes_of(client, alice))
    assert accepted["data"]["accepted"] is True and accepted["actor_ids"] == [carol.id]


# --- friends ---------------------------------------------------------------------------------


async def test_friend_request_accept_and_remove(client: Client) -> None:
    alice, bob = await signup(client), await signup(client)
    for _ in range(2):
        out = await ok(await rest(client, alice, "friend_request.send", {"user_id": bob.id}))
        assert out == {"user_id": bob.id, "status": "requested"}
    assert await ids(client, bob, "friend_request.list") == [alice.id]
    assert await ids(client, alice, "friend_request.list_sent") == [bob.id]
    rel = (await profile(client, bob, alice))["relationship"]
    assert rel["friend_request_received"] is True and rel["friend_request_sent"] is False
    for _ in range(2):
        out = await ok(await rest(client, bob, "friend_request.accept", {"user_id": alice.id}))
        assert out["status"] == "friends"
    assert await counts(client, alice) == (0, 0, 1)
    assert await counts(client, bob) == (0, 0, 1)
    assert await ids(client, bob, "friend_request.list") == []
    assert await ids(client, alice, "friend.list", user_id=bob.id) == [alice.id]
    assert (await profile(client, alice, bob))["relationship"]["friends"] is True
    out = await ok(await rest(client, alice, "friend_request.send", {"user_id": bob.id}))
    assert out["status"] == "friends"
    for _ in range(2):
        await ok(await rest(client, alice, "friend.remove", {"user_id": bob.id}), 204)
    assert await counts(client, alice) == (0, 0, 0)
    assert await counts(client, bob) == (0, 0, 0)
    await refused(await rest(client, bob, "friend_request.accept", {"user_id": alice.id}), 404, "not_found")


async def test_decline_and_cancel(client: Client) -> None:
    alice, bob, carol = [await signup(client) for _ in range(3)]
    await ok(await rest(client, alice, "friend_request.send", {"user_id": bob.id}))
    await ok(await rest(client, alice, "friend_request.send", {"user_id": carol.id}))
    for _ in range(2):
        await ok(await rest(client, bob, "friend_request.decline", {"user_id": alice.id}), 204)
        await ok(await rest(client, alice, "friend_request.cancel", {"user_id": carol.id}), 204)
    assert await ids(client, alice, "friend_request.list_sent") == []
    assert await ids(client, bob, "friend_request.list") == []
    assert await ids(client, carol, "friend_request.list") == []
    assert await counts(client, bob) == (0, 0, 0)


async def test_crossing_friend_requests_make_friends(client: Client) -> None:
    alice, bob, carol, dave = [await signup(client) for _ in range(4)]
    await ok(await rest(client, alice, "friend_request.send", {"user_id": bob.id}))
    out = await ok(await rest(client, bob, "friend_request.send", {"user_id": alice.id}))
    assert out["status"] == "friends"
    assert await counts(client, alice) == (0, 0, 1)
    assert await ids(client, alice, "friend_request.list_sent") == []
    # At the same moment: one of them goes first, the other finds its request.
    outs = await asyncio.gather(rest(client, carol, "friend_request.send", {"user_id": dave.id}),
                                rest(client, dave, "friend_request.send", {"user_id": carol.id}))
    statuses = sorted([(await ok(r))["status"] for r in outs])
    assert statuses == ["friends", "requested"]
    assert await counts(client, carol) == (0, 0, 1)
    assert await counts(client, dave) == (0, 0, 1)


async def test_friend_notifications(client: Client) -> None:
    alice, bob = await signup(client), await signup(client)
    await ok(await rest(client, alice, "friend_request.send", {"user_id": bob.id}))
    [note] = await until(notes_of(client, bob))
    assert note["kind"] == "friend_request" and note["actor_ids"] == [alice.id]
    assert note["title"] == f"{alice.username} sent you a friend request"
    await ok(await rest(client, bob, "friend_request.accept", {"user_id": alice.id}))
    [accepted] = await until(notes_of(client, alice))
    assert accepted["kind"] == "friend_request" and accepted["data"]["accepted"] is True
    assert accepted["title"] == f"{bob.username} accepted your friend request"


async def test_pending_friend_requests_are_capped(client: Client, settings: Settings) -> None:
    alice, bob = await signup(client), await signup(client)
    others = await fake_users(settings, 500)
    await sql(settings, """INSERT INTO friend_requests (sender_id, recipient_id)
                           SELECT $1::uuid, unnest($2::uuid[])""", alice.id, others)
    error = await refused(await rest(client, alice, "friend_request.send", {"user_id": bob.id}), 409,
                          "conflict")
    assert error["details"] == {"reason": "too_many_pending", "limit": 500}
    await ok(await rest(client, alice, "friend_request.cancel", {"user_id": str(others[0])}), 204)
    await ok(await rest(client, alice, "friend_request.send", {"user_id": bob.id}))


# --- blocks ----------------------------------------------------------------------------------


async def test_block_cuts_every_edge_both_ways(client: Client) -> None:
    alice, bob, carol = [await signup(client) for _ in range(3)]
    await follow(client, alice, bob)
    await follow(client, bob, alice)
    await ok(await rest(client, alice, "friend_request.send", {"user_id": bob.id}))
    await ok(await rest(client, bob, "friend_request.accept", {"user_id": alice.id}))
    await ok(await rest(client, alice, "close_friend.add", {"user_id": bob.id}), 204)
    await ok(await rest(client, bob, "close_friend.add", {"user_id": alice.id}), 204)
    await make_private(client, carol)
    await follow(client, alice, carol)
    await ok(await rest(client, carol, "friend_request.send", {"user_id": alice.id}))
    await follow(client, carol, alice)
    assert await counts(client, alice) == (2, 1, 1)

    await ok(await rest(client, bob, "user.block", {"user_id": alice.id}), 204)
    await ok(await rest(client, alice, "user.block", {"user_id": carol.id}), 204)
    for user in (alice, bob, carol):
        assert await counts(client, user) == (0, 0, 0)
    assert await ids(client, alice, "close_friend.list") == []
    assert await ids(client, bob, "close_friend.list") == []
    assert await ids(client, carol, "follow_request.list") == []
    assert await ids(client, alice, "friend_request.list") == []
    rel = (await profile(client, alice, bob))["relationship"]
    assert not any(rel.values())  # bob blocked alice: she is not told
    assert (await profile(client, bob, alice))["relationship"]["blocked"] is True
    # Nothing is possible across the block, from either side, and the reason names no one.
    for a, b in ((alice, bob), (bob, alice), (carol, alice)):
        for name in ("user.follow", "friend_request.send", "close_friend.add"):
            error = await refused(await rest(client, a, name, {"user_id": b.id}), 403, "forbidden")
            assert error["details"] == {"reason": "blocked"}
        await refused(await rest(client, a, "follower.list", {"user_id": b.id}), 404, "not_found")
    await ok(await rest(client, bob, "user.unblock", {"user_id": alice.id}), 204)
    assert await follow(client, alice, bob) == "following"
