"""Graph lists and their privacy, pagination, mutes with expiry, close friends, suggestions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from config import Rates, Settings
from server.resources import SERVICES
from tests.conftest import Account, AppFactory, signup
from tests.handlers.conversation_helpers import fields_of, ok, refused, rest
from tests.handlers.network_helpers import Client, counts, fake_users, follow, ids, make_private, profile
from tests.handlers.social_helpers import sql

LISTS = ("follower.list", "following.list", "friend.list")
OWN_LISTS = ("follow_request.list", "follow_request.list_sent", "friend_request.list",
             "friend_request.list_sent", "mute.list", "close_friend.list")


@pytest.fixture
async def client(make_client: AppFactory) -> Client:
    return await make_client(rates=Rates(signup=(1000, 3600)))


async def befriend(client: Client, a: Account, b: Account) -> None:
    await ok(await rest(client, a, "friend_request.send", {"user_id": b.id}))
    await ok(await rest(client, b, "friend_request.accept", {"user_id": a.id}))


# --- pagination ------------------------------------------------------------------------------


async def test_followers_page_newest_first_with_cursor_and_link(client: Client) -> None:
    star = await signup(client)
    fans = [await signup(client) for _ in range(5)]
    for fan in fans:
        await follow(client, fan, star)
    resp = await rest(client, star, "follower.list", {"user_id": star.id, "limit": 2})
    first = await ok(resp)
    assert [u["id"] for u in first["users"]] == [fans[4].id, fans[3].id]
    entry = first["users"][0]
    assert set(entry) == {"id", "username", "display_name", "avatar_url", "since"}
    assert entry["username"] == fans[4].username
    assert first["next_cursor"] and 'rel="next"' in resp.headers["Link"]
    assert first["next_cursor"] in resp.headers["Link"]
    second = await ok(await rest(client, star, "follower.list",
                                 {"user_id": star.id, "limit": 2, "cursor": first["next_cursor"]}))
    assert [u["id"] for u in second["users"]] == [fans[2].id, fans[1].id]
    resp = await rest(client, star, "follower.list",
                      {"user_id": star.id, "limit": 2, "cursor": second["next_cursor"]})
    last = await ok(resp)
    assert [u["id"] for u in last["users"]] == [fans[0].id]
    assert last["next_cursor"] is None and "Link" not in resp.headers
    # The same list from the other side: everyone who follows star, one page.
    assert await ids(client, fans[0], "following.list", user_id=fans[0].id) == [star.id]


@pytest.mark.parametrize("name", LISTS + OWN_LISTS)
async def test_list_paging_input_is_checked(client: Client, name: str) -> None:
    alice = await signup(client)
    base: dict[str, Any] = {"user_id": alice.id} if name in LISTS else {}
    await ok(await rest(client, alice, name, base))
    for bad, field in (({"limit": 41}, "limit"), ({"limit": 0}, "limit"),
                       ({"cursor": "%%%"}, "cursor"), ({"extra": "1"}, "extra")):
        error = await refused(await rest(client, alice, name, {**base, **bad}), 400, "invalid_input")
        assert fields_of(error) == {field}
    if name in LISTS:
        error = await refused(await rest(client, alice, name, {"user_id": "me"}), 400,
                              "invalid_input")
        assert fields_of(error) == {"user_id"}
        await refused(await rest(client, alice, name, {"user_id": str(uuid.uuid4())}), 404,
                      "not_found")


# --- who may list whom -----------------------------------------------------------------------


async def test_a_private_accounts_lists_are_for_it_its_followers_and_friends(client: Client) -> None:
    owner, follower, friend, stranger, pending = [await signup(client) for _ in range(5)]
    await make_private(client, owner)
    await follow(client, follower, owner)
    await ok(await rest(client, owner, "follow_request.approve", {"user_id": follower.id}), 204)
    await befriend(client, friend, owner)
    await follow(client, pending, owner)
    for name in LISTS:
        for viewer in (owner, follower, friend):
            await ok(await rest(client, viewer, name, {"user_id": owner.id}))
        for viewer in (stranger, pending):
            error = await refused(await rest(client, viewer, name, {"user_id": owner.id}), 403,
                                  "forbidden")
            assert error["details"] == {"reason": "private_account"}
    assert await ids(client, follower, "follower.list", user_id=owner.id) == [follower.id]
    assert await ids(client, friend, "friend.list", user_id=owner.id) == [friend.id]
    # The counts stay on the profile for everyone.
    assert (await profile(client, stranger, owner))["follower_count"] == 1


async def test_lists_leave_out_deleted_and_blocked_users(client: Client) -> None:
    star, gone, rude, viewer = [await signup(client) for _ in range(4)]
    for fan in (gone, rude, viewer):
        await follow(client, fan, star)
    await befriend(client, gone, star)
    await ok(await client.delete("/v1/users/me", json={"password": gone.password},
                                 headers=gone.headers), 204)
    assert await counts(client, star) == (2, 0, 0)
    assert await ids(client, star, "friend.list", user_id=star.id) == []
    await ok(await rest(client, viewer, "user.block", {"user_id": rude.id}), 204)
    assert await ids(client, viewer, "follower.list", user_id=star.id) == [viewer.id]
    assert sorted(await ids(client, star, "follower.list", user_id=star.id)) == sorted(
        [rude.id, viewer.id])
    await refused(await rest(client, viewer, "follower.list", {"user_id": gone.id}), 404,
                  "not_found")


# --- mutes -----------------------------------------------------------------------------------


async def test_mutes_with_and_without_an_end(client: Client) -> None:
    me, forever, hour, day = [await signup(client) for _ in range(4)]
    services = client.app[SERVICES]
    now = datetime.now(UTC)
    out = await ok(await rest(client, me, "user.mute", {"user_id": forever.id}))
    assert out == {"user_id": forever.id, "muted": True, "until": None}
    in_an_hour = now + timedelta(hours=1)
    out = await ok(await rest(client, me, "user.mute",
                              {"user_id": hour.id, "until": in_an_hour.isoformat()}))
    assert datetime.fromisoformat(out["until"]) == in_an_hour
    out = await ok(await rest(client, me, "user.mute", {"user_id": day.id, "duration_s": 86400}))
    assert datetime.fromisoformat(out["until"]) > now + timedelta(hours=23)
    page = await ok(await rest(client, me, "mute.list"))
    assert [u["id"] for u in page["users"]] == [day.id, hour.id, forever.id]
    assert page["users"][2]["until"] is None
    assert (await profile(client, me, hour))["relationship"]["muted"] is True
    assert (await profile(client, hour, me))["relationship"]["muted"] is False  # not told

    services.clock = lambda: datetime.now(UTC) + timedelta(hours=2)
    assert await ids(client, me, "mute.list") == [day.id, forever.id]
    assert (await profile(client, me, hour))["relationship"]["muted"] is False
    await ok(await rest(client, me, "user.mute", {"user_id": hour.id, "duration_s": 60}))
    assert await ids(client, me, "mute.list") == [hour.id, day.id, forever.id]
    for _ in range(2):
        out = await ok(await rest(client, me, "user.unmute", {"user_id": day.id}))
        assert out == {"user_id": day.id, "muted": False, "until": None}
    assert await ids(client, me, "mute.list") == [hour.id, forever.id]


async def test_mute_input_rules(client: Client) -> None:
    me, other = await signup(client), await signup(client)
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    future = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    for payload, field in (({"until": past}, "until"),
                           ({"until": "2030-01-01T00:00:00"}, "until"),  # no zone
                           ({"duration_s": 0}, "duration_s"),
                           ({"duration_s": 366 * 86400 + 1}, "duration_s")):
        error = await refused(await rest(client, me, "user.mute", {"user_id": other.id, **payload}),
                              400, "invalid_input")
        assert fields_of(error) == {field}, error
    await refused(await rest(client, me, "user.mute",
                             {"user_id": other.id, "until": future, "duration_s": 60}),
                  400, "invalid_input")
    assert await ids(client, me, "mute.list") == []


async def test_mutes_are_capped(client: Client, settings: Settings) -> None:
    me, other = await signup(client), await signup(client)
    muted = await fake_users(settings, 1000)
    await sql(settings, "INSERT INTO user_mutes (muter_id, muted_id) SELECT $1::uuid, unnest($2::uuid[])",
              me.id, muted)
    error = await refused(await rest(client, me, "user.mute", {"user_id": other.id}), 409, "conflict")
    assert error["details"] == {"reason": "too_many_mutes", "limit": 1000}
    # Changing a mute in force is not a new one; an expired mute frees its place.
    await ok(await rest(client, me, "user.mute", {"user_id": str(muted[0]), "duration_s": 60}))
    await sql(settings, "UPDATE user_mutes SET until = now() - interval '1 s' WHERE muted_id = $1",
              muted[1])
    await ok(await rest(client, me, "user.mute", {"user_id": other.id}))


# --- close friends ---------------------------------------------------------------------------


async def test_close_friends_list(client: Client, settings: Settings) -> None:
    me, bff, pal = [await signup(client) for _ in range(3)]
    for _ in range(2):
        await ok(await rest(client, me, "close_friend.add", {"user_id": bff.id}), 204)
    await ok(await rest(client, me, "close_friend.add", {"user_id": pal.id}), 204)
    assert await ids(client, me, "close_friend.list") == [pal.id, bff.id]
    assert (await profile(client, me, bff))["relationship"]["close_friend"] is True
    assert await ids(client, bff, "close_friend.list") == []  # each keeps their own
    for _ in range(2):
        await ok(await rest(client, me, "close_friend.remove", {"user_id": pal.id}), 204)
    assert await ids(client, me, "close_friend.list") == [bff.id]
    await sql(settings, """INSERT INTO close_friends (user_id, friend_id)
                           SELECT $1::uuid, unnest($2::uuid[])""", me.id, await fake_users(settings, 499))
    error = await refused(await rest(client, me, "close_friend.add", {"user_id": pal.id}), 409,
                          "conflict")
    assert error["details"] == {"reason": "close_friends_full", "limit": 500}
    await ok(await rest(client, me, "close_friend.add", {"user_id": bff.id}), 204)  # already on it


# --- suggestions -----------------------------------------------------------------------------


async def test_suggestions_rank_by_mutual_connections(client: Client) -> None:
    me, f1, f2, f3, s1, s2, s3, blocked, gone, requested = [await signup(client) for _ in range(10)]
    for f in (f1, f2):
        await follow(client, me, f)
    await befriend(client, me, f3)
    for f in (f1, f2, f3):
        for target in (s1, blocked, gone):
            await follow(client, f, target)
        await follow(client, f, requested)
    await follow(client, f1, s2)
    await befriend(client, f2, s2)
    await befriend(client, f3, s3)
    await follow(client, f1, f2)  # someone I already follow
    await follow(client, f1, me)  # myself
    await ok(await rest(client, blocked, "user.block", {"user_id": me.id}), 204)
    await ok(await client.delete("/v1/users/me", json={"password": gone.password},
                                 headers=gone.headers), 204)
    await make_private(client, requested)
    await follow(client, me, requested)

    page = await ok(await rest(client, me, "suggestion.list"))
    assert [(u["id"], u["mutual_count"]) for u in page["users"]] == [
        (s1.id, 3), (s2.id, 2), (s3.id, 1)]
    assert set(page["users"][0]) == {"id", "username", "display_name", "avatar_url", "mutual_count"}
    assert await ids(client, me, "suggestion.list", limit=1) == [s1.id]
    for bad in (0, 41):
        error = await refused(await rest(client, me, "suggestion.list", {"limit": bad}), 400,
                              "invalid_input")
        assert fields_of(error) == {"limit"}
    assert (await ok(await rest(client, s3, "suggestion.list")))["users"] != []
    lonely = await signup(client)
    assert (await ok(await rest(client, lonely, "suggestion.list")))["users"] == []
