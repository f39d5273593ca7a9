"""Stories: create and its limits, audiences, expiry by the clock, the tray, views (live too)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import jwt
import pytest

from config import Rates, Settings
from config.settings import Limits
from server.resources import build_token_service
from tests.conftest import Account, AppFactory, SocketFactory, signup
from tests.handlers.conversation_helpers import Inbox, fields_of, is_event, ok, refused, rest
from tests.handlers.social_helpers import sql
from tests.handlers.story_helpers import (
    Client,
    befriend,
    close_friend,
    follow,
    install_clock,
    post_story,
    tray,
    tray_ids,
    upload,
)

# -- create ----------------------------------------------------------------------------------


async def test_create_answers_the_story_and_get_reads_it(client: Client) -> None:
    alice = await signup(client)
    clock = install_clock(client)
    media_id = await upload(client, alice)
    story = await post_story(client, alice, media_id=media_id, caption="sunset",
                             audience="friends", allow_replies=False, allow_comments=True)
    assert story["author"]["id"] == alice.id and story["caption"] == "sunset"
    assert story["audience"] == "friends" and story["media"]["id"] == media_id
    assert story["media"]["url"] == f"/v1/media/{media_id}/content"
    assert story["allow_replies"] is False and story["allow_comments"] is True
    assert story["expired"] is False and story["seen"] is True and story["view_count"] == 0
    created = story["created_at"].replace("Z", "+00:00")
    assert created == clock.now.isoformat()
    got = await ok(await rest(client, alice, "story.get", {"story_id": story["id"]}))
    assert got["id"] == story["id"] and got["expires_at"] == story["expires_at"]
    defaults = await post_story(client, alice)
    assert defaults["audience"] == "followers" and defaults["allow_replies"] is True
    assert defaults["allow_comments"] is False and defaults["caption"] is None


@pytest.mark.parametrize(("payload", "field"), [
    ({"media_id": None}, "media_id"),
    ({"media_id": "nope"}, "media_id"),
    ({"audience": "public"}, "audience"),
    ({"audience": "private"}, "audience"),
    ({"caption": "x" * 501}, "caption"),
    ({"allow_replies": "sometimes"}, "allow_replies"),
    ({"idempotency_key": "k" * 65}, "idempotency_key"),
    ({"surprise": 1}, "surprise"),
])
async def test_bad_create_input_is_refused(
    client: Client, payload: dict[str, Any], field: str
) -> None:
    alice = await signup(client)
    body = {"media_id": await upload(client, alice), **payload}
    if body["media_id"] is None:
        del body["media_id"]
    error = await refused(await rest(client, alice, "story.create", body), 400, "invalid_input")
    assert field in fields_of(error)


async def test_media_must_be_your_own_upload(client: Client) -> None:
    alice, bob = await signup(client), await signup(client)
    bobs = await upload(client, bob)
    for media_id in (bobs, str(uuid.uuid4())):
        error = await refused(await rest(client, alice, "story.create", {"media_id": media_id}),
                              400, "invalid_input")
        assert error["details"]["fields"][0]["type"] == "media_not_found"


async def test_idempotency_key_returns_the_same_story(client: Client) -> None:
    alice = await signup(client)
    media_id = await upload(client, alice)
    payload = {"media_id": media_id, "idempotency_key": "story-1"}
    first, second = await asyncio.gather(
        rest(client, alice, "story.create", payload), rest(client, alice, "story.create", payload))
    ids = {(await ok(first, 201))["id"], (await ok(second, 201))["id"]}
    assert len(ids) == 1
    mine = await ok(await rest(client, alice, "story.list_mine"))
    assert [s["id"] for s in mine["stories"]] == list(ids)


async def test_at_most_the_active_limit_and_expired_ones_do_not_count(
    make_client: AppFactory,
) -> None:
    client = await make_client(limits=Limits(stories_active_max=3))
    alice = await signup(client)
    clock = install_clock(client)
    media_id = await upload(client, alice)
    keyed = await post_story(client, alice, media_id=media_id, idempotency_key="k")
    made = await asyncio.gather(*(rest(client, alice, "story.create", {"media_id": media_id})
                                  for _ in range(4)))
    statuses = sorted(r.status for r in made)
    assert statuses == [201, 201, 409, 409]
    error = await refused(await rest(client, alice, "story.create", {"media_id": media_id}),
                          409, "conflict")
    assert error["details"] == {"reason": "too_many_active_stories", "limit": 3}
    # A retry of a create that succeeded still answers its story at the limit.
    retried = await post_story(client, alice, media_id=media_id, idempotency_key="k")
    assert retried["id"] == keyed["id"]
    clock.advance(hours=24, seconds=1)
    await post_story(client, alice, media_id=media_id)


async def test_scopes_and_authentication(client: Client, settings: Settings) -> None:
    alice = await signup(client)
    story = await post_story(client, alice)
    await refused(await client.get("/v1/stories/feed"), 401, "unauthorized")
    claims = jwt.decode(alice.access_token, options={"verify_signature": False})
    tokens = build_token_service(settings)

    def bearer(*scopes: str) -> dict[str, str]:
        token = tokens.issue(uuid.UUID(claims["sub"]), uuid.UUID(claims["sid"]), list(scopes))
        return {"Authorization": f"Bearer {token.token}"}

    read_only = bearer("read:content")
    assert (await ok(await client.get(f"/v1/stories/{story['id']}", headers=read_only)))["id"]
    for method, path, body in (("POST", "/v1/stories", {"media_id": story["media"]["id"]}),
                               ("POST", f"/v1/stories/{story['id']}/views", None),
                               ("DELETE", f"/v1/stories/{story['id']}", None),
                               ("POST", "/v1/highlights", {"title": "t",
                                                           "story_ids": [story["id"]]})):
        error = await refused(await client.request(method, path, json=body, headers=read_only),
                              403, "forbidden")
        assert error["details"]["required_scope"] == "write:content"
    error = await refused(await client.post(f"/v1/stories/{story['id']}/replies",
                                            json={"body": "hi", "client_id": "c"},
                                            headers=read_only),
                          403, "forbidden")
    assert error["details"]["required_scope"] == "write:messages"
    error = await refused(await client.get("/v1/stories/feed", headers=bearer("read:profile")),
                          403, "forbidden")
    assert error["details"]["required_scope"] == "read:content"


# -- audiences -------------------------------------------------------------------------------


@pytest.fixture
async def circle(client: Client, settings: Settings) -> dict[str, Account]:
    """An author and one viewer of each kind, made in SQL (the graph commands are elsewhere)."""
    people = {name: await signup(client) for name in
              ("author", "follower", "friend", "close", "stranger", "blocked")}
    author = people["author"]
    await follow(settings, people["follower"], author)
    await befriend(settings, people["friend"], author)
    await follow(settings, people["close"], author)
    await close_friend(settings, author, people["close"])
    await follow(settings, people["blocked"], author)
    await sql(settings, "INSERT INTO user_blocks (blocker_id, blocked_id) VALUES ($1, $2)",
              author.id, people["blocked"].id)
    return people


SEES = {
    "followers": {"follower", "friend", "close"},
    "friends": {"friend"},
    "close_friends": {"close"},
}


async def test_each_audience_reaches_exactly_its_viewers(
    client: Client, circle: dict[str, Account]
) -> None:
    author = circle["author"]
    stories = {audience: (await post_story(client, author, audience=audience))["id"]
               for audience in SEES}
    for name, viewer in circle.items():
        if name == "author":
            continue
        expected = {stories[a] for a, who in SEES.items() if name in who}
        assert tray_ids(await tray(client, viewer)) == expected, name
        for audience, story_id in stories.items():
            visible = name in SEES[audience]
            got = await rest(client, viewer, "story.get", {"story_id": story_id})
            viewed = await rest(client, viewer, "story.view", {"story_id": story_id})
            if visible:
                assert (await ok(got))["view_count"] is None  # the author's eyes only
                assert (await ok(viewed))["counted"] is True
            else:
                await refused(got, 404, "not_found")
                await refused(viewed, 404, "not_found")
    counts = {s["id"]: s["view_count"]
              for s in (await ok(await rest(client, author, "story.list_mine")))["stories"]}
    assert counts == {stories[a]: len(who) for a, who in SEES.items()}


async def test_blocking_later_hides_the_story_and_muting_hides_it_from_the_tray(
    client: Client, settings: Settings, circle: dict[str, Account]
) -> None:
    author, follower = circle["author"], circle["follower"]
    story = await post_story(client, author)
    await ok(await rest(client, follower, "story.get", {"story_id": story["id"]}))
    await sql(settings, "INSERT INTO user_mutes (muter_id, muted_id) VALUES ($1, $2)",
              circle["friend"].id, author.id)
    assert tray_ids(await tray(client, circle["friend"])) == set()
    await ok(await rest(client, circle["friend"], "story.get", {"story_id": story["id"]}))
    await ok(await rest(client, follower, "user.block", {"user_id": author.id}), 204)
    await refused(await rest(client, follower, "story.get", {"story_id": story["id"]}),
                  404, "not_found")
    assert tray_ids(await tray(client, follower)) == set()


# -- expiry ----------------------------------------------------------------------------------


async def test_expiry_is_by_the_clock_in_every_read(
    client: Client, settings: Settings
) -> None:
    author, viewer = await signup(client), await signup(client)
    await follow(settings, viewer, author)
    clock = install_clock(client)
    story = await post_story(client, author)
    clock.advance(hours=23, minutes=59)
    assert tray_ids(await tray(client, viewer)) == {story["id"]}
    clock.advance(minutes=1)  # exactly 24 h: expired
    assert tray_ids(await tray(client, viewer)) == set()
    for name in ("story.get", "story.view", "story.viewer.list"):
        await refused(await rest(client, viewer, name, {"story_id": story["id"]}),
                      404, "not_found")
    await refused(await rest(client, viewer, "story.react",
                             {"story_id": story["id"], "kind": "love"}), 404, "not_found")
    assert (await ok(await rest(client, author, "story.list_mine")))["stories"] == []
    archived = await ok(await rest(client, author, "story.list_archived"))
    assert [s["id"] for s in archived["stories"]] == [story["id"]]
    assert archived["stories"][0]["expired"] is True
    own = await ok(await rest(client, author, "story.get", {"story_id": story["id"]}))
    assert own["expired"] is True
    # The archive is the owner's alone.
    assert (await ok(await rest(client, viewer, "story.list_archived")))["stories"] == []


async def test_archive_pages_newest_first(client: Client) -> None:
    alice = await signup(client)
    clock = install_clock(client)
    media_id = await upload(client, alice)
    made = []
    for _ in range(5):
        made.append((await post_story(client, alice, media_id=media_id))["id"])
        clock.advance(minutes=10)
    clock.advance(hours=25)
    seen: list[str] = []
    cursor = None
    while True:
        page = await ok(await rest(client, alice, "story.list_archived",
                                   {"limit": 2, **({"cursor": cursor} if cursor else {})}))
        seen += [s["id"] for s in page["stories"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]
    for bad in ({"limit": 0}, {"limit": 41}, {"cursor": "not-a-cursor"}):
        await refused(await rest(client, alice, "story.list_archived", bad), 400, "invalid_input")


# -- the tray --------------------------------------------------------------------------------


async def test_tray_groups_by_author_unseen_first_then_newest(
    client: Client, settings: Settings
) -> None:
    me = await signup(client)
    authors = [await signup(client) for _ in range(4)]
    clock = install_clock(client)
    for author in authors[:3]:
        await follow(settings, me, author)
    await befriend(settings, me, authors[3])
    posted: dict[str, list[str]] = {}
    for author in authors:
        for _ in range(2):
            posted.setdefault(author.id, []).append((await post_story(client, author))["id"])
            clock.advance(minutes=1)
    stranger = await signup(client)
    await post_story(client, stranger)
    # Seeing both of author 3's stories makes them seen; one of author 2's is not enough.
    for story_id in posted[authors[3].id] + posted[authors[2].id][:1]:
        await ok(await rest(client, me, "story.view", {"story_id": story_id}))
    page = await tray(client, me)
    order = [g["author"]["id"] for g in page["authors"]]
    assert order == [authors[2].id, authors[1].id, authors[0].id, authors[3].id]
    assert [g["has_unseen"] for g in page["authors"]] == [True, True, True, False]
    for group in page["authors"]:
        assert [s["id"] for s in group["stories"]] == posted[group["author"]["id"]]
    assert [s["seen"] for s in page["authors"][0]["stories"]] == [True, False]
    # Paged one author at a time, the same order.
    cursor, paged = None, []
    while True:
        one = await tray(client, me, limit=1, **({"cursor": cursor} if cursor else {}))
        paged += [g["author"]["id"] for g in one["authors"]]
        cursor = one["next_cursor"]
        if cursor is None:
            break
    assert paged == order


# -- views -----------------------------------------------------------------------------------


async def test_concurrent_views_count_each_viewer_once(
    make_client: AppFactory, settings: Settings
) -> None:
    client = await make_client(rates=Rates(signup=(100, 3600)))
    author = await signup(client)
    viewers = [await signup(client) for _ in range(20)]
    for viewer in viewers:
        await follow(settings, viewer, author)
    story = await post_story(client, author)
    same = await asyncio.gather(*(rest(client, viewers[0], "story.view", {"story_id": story["id"]})
                                  for _ in range(20)))
    counted = [(await ok(r))["counted"] for r in same]
    assert counted.count(True) == 1
    many = await asyncio.gather(*(rest(client, v, "story.view", {"story_id": story["id"]})
                                  for v in viewers))
    assert [(await ok(r))["counted"] for r in many].count(True) == 19
    mine = await ok(await rest(client, author, "story.get", {"story_id": story["id"]}))
    assert mine["view_count"] == 20
    rows = await sql(settings, "SELECT count(*) AS n FROM story_views WHERE story_id = $1",
                     uuid.UUID(story["id"]))
    assert rows[0]["n"] == 20
    # The author's own views never count.
    assert (await ok(await rest(client, author, "story.view",
                                {"story_id": story["id"]})))["counted"] is False


async def test_the_author_is_told_live_of_first_views_only(
    client: Client, settings: Settings, connect_socket: SocketFactory
) -> None:
    author, viewer = await signup(client), await signup(client, display_name="Vee")
    await follow(settings, viewer, author)
    story = await post_story(client, author)
    sio = await connect_socket(author.access_token)
    inbox = Inbox(sio, "story.viewed")
    # The socket twin of story.view: same input, the answer in the ack.
    viewer_sio = await connect_socket(viewer.access_token)
    ack = await viewer_sio.call("story.view", {"story_id": story["id"]}, timeout=10)
    assert ack == {"ok": True, "data": {"story_id": story["id"], "counted": True}}
    index = await inbox.wait_for(is_event("story.viewed", story_id=story["id"]))
    data = inbox.events[index][1]
    assert data["view_count"] == 1
    assert data["viewer"] == {"id": viewer.id, "username": viewer.username,
                              "display_name": "Vee", "avatar_url": None}
    await ok(await rest(client, viewer, "story.view", {"story_id": story["id"]}))
    # A second viewer's event arrives after anything the repeat view could have sent.
    other = await signup(client)
    await follow(settings, other, author)
    await ok(await rest(client, other, "story.view", {"story_id": story["id"]}))
    await inbox.wait_for(is_event("story.viewed", view_count=2))
    assert [d["viewer"]["id"] for _, d in inbox.events] == [viewer.id, other.id]


async def test_viewers_are_for_the_author_only_newest_first_and_paged(
    client: Client, settings: Settings
) -> None:
    author = await signup(client)
    clock = install_clock(client)
    viewers = [await signup(client) for _ in range(3)]
    for viewer in viewers:
        await follow(settings, viewer, author)
    story = await post_story(client, author)
    for viewer in viewers:
        clock.advance(seconds=5)
        await ok(await rest(client, viewer, "story.view", {"story_id": story["id"]}))
    await ok(await rest(client, viewers[1], "story.react",
                        {"story_id": story["id"], "kind": "wow"}))
    first = await ok(await rest(client, author, "story.viewer.list",
                                {"story_id": story["id"], "limit": 2}))
    assert first["view_count"] == 3
    assert [v["user"]["id"] for v in first["viewers"]] == [viewers[2].id, viewers[1].id]
    assert first["viewers"][1]["reaction"] == "wow"
    rest_page = await ok(await rest(client, author, "story.viewer.list",
                                    {"story_id": story["id"], "cursor": first["next_cursor"]}))
    assert [v["user"]["id"] for v in rest_page["viewers"]] == [viewers[0].id]
    assert rest_page["next_cursor"] is None
    error = await refused(await rest(client, viewers[0], "story.viewer.list",
                                     {"story_id": story["id"]}), 403, "forbidden")
    assert error["details"]["reason"] == "not_author"
    stranger = await signup(client)
    await refused(await rest(client, stranger, "story.viewer.list", {"story_id": story["id"]}),
                  404, "not_found")
    # Archived stories keep their viewers list.
    clock.advance(hours=25)
    archived = await ok(await rest(client, author, "story.viewer.list", {"story_id": story["id"]}))
    assert archived["view_count"] == 3 and len(archived["viewers"]) == 3


async def test_delete_is_for_the_author_and_removes_the_story(
    client: Client, settings: Settings
) -> None:
    author, viewer = await signup(client), await signup(client)
    await follow(settings, viewer, author)
    story = await post_story(client, author)
    error = await refused(await rest(client, viewer, "story.delete", {"story_id": story["id"]}),
                          403, "forbidden")
    assert error["details"]["reason"] == "not_author"
    await ok(await rest(client, author, "story.delete", {"story_id": story["id"]}), 204)
    for who in (author, viewer):
        await refused(await rest(client, who, "story.get", {"story_id": story["id"]}),
                      404, "not_found")
    await refused(await rest(client, author, "story.delete", {"story_id": story["id"]}),
                  404, "not_found")
    assert tray_ids(await tray(client, viewer)) == set()
    await refused(await rest(client, author, "story.get", {"story_id": "x"}), 400,
                  "invalid_input")
