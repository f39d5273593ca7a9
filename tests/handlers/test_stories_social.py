"""Stories: reactions, replies as DMs, comments, media access by time, highlights, the purge."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

from config import Rates, Settings
from config.settings import Limits
from server.resources import SERVICES
from tests.conftest import Account, AppFactory, signup
from tests.handlers.conversation_helpers import fields_of, ok, refused, rest
from tests.handlers.social_helpers import sql
from tests.handlers.story_helpers import (
    Client,
    befriend,
    close_friend,
    follow,
    install_clock,
    post_story,
    settled,
    upload,
)
from workers.story_purge import purge_once


async def _notification(client: Client, account: Account, kind: str) -> dict[str, Any]:
    for _ in range(200):
        page = await ok(await rest(client, account, "notification.list"))
        found = [n for n in page["notifications"] if n["kind"] == kind]
        if found:
            return dict(found[0])
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {kind} notification")


# -- reactions -------------------------------------------------------------------------------


async def test_one_reaction_per_viewer_counted_for_the_author(
    client: Client, settings: Settings
) -> None:
    author, fan = await signup(client), await signup(client, display_name="Fan")
    await follow(settings, fan, author)
    story = await post_story(client, author)
    sid = story["id"]
    first = await ok(await rest(client, fan, "story.react", {"story_id": sid, "kind": "love"}))
    assert first == {"story_id": sid, "my_reaction": "love", "changed": True}
    again = await ok(await rest(client, fan, "story.react", {"story_id": sid, "kind": "love"}))
    assert again["changed"] is False
    await ok(await rest(client, fan, "story.react", {"story_id": sid, "kind": "haha"}))
    mine = await ok(await rest(client, author, "story.get", {"story_id": sid}))
    assert mine["reaction_count"] == 1 and mine["reaction_counts"] == {"haha": 1}
    theirs = await ok(await rest(client, fan, "story.get", {"story_id": sid}))
    assert theirs["my_reaction"] == "haha" and theirs["reaction_counts"] is None
    note = await _notification(client, author, "reaction")
    assert note["subject"] == {"type": "item", "id": sid}
    assert note["data"]["story_id"] == sid and note["actor_ids"] == [fan.id]
    gone = await ok(await rest(client, fan, "story.unreact", {"story_id": sid}))
    assert gone == {"story_id": sid, "my_reaction": None, "changed": True}
    mine = await ok(await rest(client, author, "story.get", {"story_id": sid}))
    assert mine["reaction_count"] == 0 and mine["reaction_counts"] == {}
    error = await refused(await rest(client, fan, "story.react", {"story_id": sid, "kind": "🔥"}),
                          400, "invalid_input")
    assert fields_of(error) == {"kind"}
    error = await refused(await rest(client, author, "story.react",
                                     {"story_id": sid, "kind": "like"}), 400, "invalid_input")
    assert error["details"]["fields"][0]["type"] == "self"
    stranger = await signup(client)
    await refused(await rest(client, stranger, "story.react", {"story_id": sid, "kind": "like"}),
                  404, "not_found")


# -- replies ---------------------------------------------------------------------------------


async def test_a_reply_is_a_dm_to_the_author_carrying_the_story(
    client: Client, settings: Settings
) -> None:
    author, fan = await signup(client), await signup(client)
    await follow(settings, fan, author)
    story = await post_story(client, author)
    sent = await ok(await rest(client, fan, "story.reply",
                               {"story_id": story["id"], "body": "so nice", "client_id": "r1"}), 201)
    assert sent["story_id"] == story["id"] and sent["body"] == "so nice"
    assert sent["sender_id"] == fan.id
    again = await ok(await rest(client, fan, "story.reply",
                                {"story_id": story["id"], "body": "so nice", "client_id": "r1"}), 201)
    assert again["id"] == sent["id"]
    history = await ok(await rest(client, author, "message.list",
                                  {"conversation_id": sent["conversation_id"]}))
    assert [(m["body"], m["story_id"]) for m in history["messages"]] == [("so nice", story["id"])]
    direct = await ok(await rest(client, author, "conversation.get",
                                 {"conversation_id": sent["conversation_id"]}))
    assert direct["kind"] == "direct" and direct["peer"] == fan.id
    # The same DM takes the next reply; plain messages carry no story.
    second = await ok(await rest(client, fan, "story.reply",
                                 {"story_id": story["id"], "body": "again", "client_id": "r2"}),
                      201)
    assert second["conversation_id"] == sent["conversation_id"]
    plain = await ok(await rest(client, author, "message.send", {
        "conversation_id": sent["conversation_id"], "body": "thanks",
        "client_id": uuid.uuid4().hex}), 201)
    assert plain["story_id"] is None
    # One story_reply notification (grouped per story) instead of message notifications.
    async with asyncio.timeout(30):
        while (note := await _notification(client, author, "story_reply"))["count"] != 2:
            await asyncio.sleep(0.05)
    assert note["subject"] == {"type": "item", "id": story["id"]}
    # The notification jobs of the two replies may be handled in either order.
    assert note["data"]["message_id"] in {sent["id"], second["id"]}
    assert note["data"]["conversation_id"] == sent["conversation_id"]
    assert note["title"].endswith("replied to your story")
    kinds = [n["kind"] for n in (await ok(await rest(client, author,
                                                     "notification.list")))["notifications"]]
    assert kinds == ["story_reply"]


async def test_replies_are_refused_when_off_expired_blocked_or_your_own(
    client: Client, settings: Settings
) -> None:
    author, fan = await signup(client), await signup(client)
    await follow(settings, fan, author)
    clock = install_clock(client)
    quiet = await post_story(client, author, allow_replies=False)
    error = await refused(await rest(client, fan, "story.reply",
                                     {"story_id": quiet["id"], "body": "hi", "client_id": "q"}),
                          403, "forbidden")
    assert error["details"]["reason"] == "replies_off"
    story = await post_story(client, author)
    error = await refused(await rest(client, author, "story.reply",
                                     {"story_id": story["id"], "body": "me", "client_id": "m"}),
                          400, "invalid_input")
    assert error["details"]["fields"][0]["type"] == "self"
    for bad in ({"body": ""}, {"body": "   "}, {"body": "x" * 4001}, {"client_id": ""},
                {"client_id": "x" * 65}):
        payload = {"story_id": story["id"], "body": "hi", "client_id": "c", **bad}
        await refused(await rest(client, fan, "story.reply", payload), 400, "invalid_input")
    # Required, as message.send's: without it a retry could not be told from a new reply.
    error = await refused(await rest(client, fan, "story.reply",
                                     {"story_id": story["id"], "body": "hi"}),
                          400, "invalid_input")
    assert "client_id" in {f["field"] for f in error["details"]["fields"]}
    await ok(await rest(client, author, "user.block", {"user_id": fan.id}), 204)
    await refused(await rest(client, fan, "story.reply", {"story_id": story["id"], "body": "hi",
                                                          "client_id": "b"}), 404, "not_found")
    await ok(await rest(client, author, "user.unblock", {"user_id": fan.id}), 204)
    await follow(settings, fan, author)  # the block dropped the follow
    await ok(await rest(client, fan, "story.reply", {"story_id": story["id"], "body": "hi",
                                                     "client_id": "u"}), 201)
    clock.advance(hours=24)
    await refused(await rest(client, fan, "story.reply", {"story_id": story["id"], "body": "hi",
                                                          "client_id": "e"}), 404, "not_found")


# -- comments (through item.create) ----------------------------------------------------------


async def test_comments_only_where_allowed_and_only_while_active(
    client: Client, settings: Settings
) -> None:
    author, fan = await signup(client), await signup(client)
    await follow(settings, fan, author)
    clock = install_clock(client)
    closed = await post_story(client, author)
    error = await refused(await rest(client, fan, "item.create", {
        "kind": "comment", "parent_id": closed["id"], "body": "hey"}), 403, "forbidden")
    assert error["details"]["reason"]
    story = await post_story(client, author, allow_comments=True)
    comment = await ok(await rest(client, fan, "item.create", {
        "kind": "comment", "parent_id": story["id"], "body": "lovely"}), 201)
    listed = await ok(await rest(client, author, "item.reply.list", {"item_id": story["id"]}))
    assert [c["id"] for c in listed["items"]] == [comment["id"]]
    assert (await ok(await rest(client, author, "story.get",
                                {"story_id": story["id"]})))["comment_count"] == 1
    stranger = await signup(client)
    await refused(await rest(client, stranger, "item.create", {
        "kind": "comment", "parent_id": story["id"], "body": "me too"}), 404, "not_found")
    clock.advance(hours=24, seconds=1)
    await refused(await rest(client, fan, "item.create", {
        "kind": "comment", "parent_id": story["id"], "body": "late"}), 404, "not_found")
    await refused(await rest(client, fan, "item.reply.list", {"item_id": story["id"]}),
                  404, "not_found")


# -- media access follows the story ----------------------------------------------------------


async def test_the_audience_fetches_the_media_until_expiry_unless_highlighted(
    client: Client, settings: Settings
) -> None:
    author, fan, stranger = await signup(client), await signup(client), await signup(client)
    await follow(settings, fan, author)
    clock = install_clock(client)
    kept_media, lost_media = await upload(client, author), await upload(client, author)
    await settled(client, author, kept_media)
    await settled(client, author, lost_media)
    kept = await post_story(client, author, media_id=kept_media)
    await post_story(client, author, media_id=lost_media)
    await ok(await rest(client, author, "highlight.create",
                        {"title": "best", "story_ids": [kept["id"]]}), 201)
    for media_id in (kept_media, lost_media):
        resp = await client.get(f"/v1/media/{media_id}/content", headers=fan.headers)
        assert resp.status == 200, await resp.text()
        resp = await client.get(f"/v1/media/{media_id}/content", headers=stranger.headers)
        assert resp.status == 404
    clock.advance(hours=24)
    assert (await client.get(f"/v1/media/{kept_media}/content", headers=fan.headers)).status == 200
    assert (await client.get(f"/v1/media/{lost_media}/content", headers=fan.headers)).status == 404
    assert (await client.get(f"/v1/media/{lost_media}/content",
                             headers=author.headers)).status == 200


# -- highlights ------------------------------------------------------------------------------


async def test_highlights_keep_stories_past_expiry_for_their_audience(
    client: Client, settings: Settings
) -> None:
    author = await signup(client)
    follower, friend, close, stranger = [await signup(client) for _ in range(4)]
    await follow(settings, follower, author)
    await befriend(settings, friend, author)
    await close_friend(settings, author, close)
    clock = install_clock(client)
    public = await post_story(client, author, audience="followers")
    friends_only = await post_story(client, author, audience="friends")
    inner = await post_story(client, author, audience="close_friends")
    made = await ok(await rest(client, author, "highlight.create", {
        "title": " Trip ", "story_ids": [inner["id"], friends_only["id"], public["id"]],
        "cover_story_id": inner["id"]}), 201)
    assert made["title"] == "Trip" and made["story_count"] == 3
    assert [s["id"] for s in made["stories"]] == [inner["id"], friends_only["id"], public["id"]]
    clock.advance(days=3)
    expect = [(follower, [public["id"]]), (friend, [friends_only["id"], public["id"]]),
              (close, [inner["id"]]), (stranger, [])]
    for viewer, ids in expect:
        page = await ok(await rest(client, viewer, "highlight.list", {"user_id": author.id}))
        if not ids:
            assert page["highlights"] == []
            await refused(await rest(client, viewer, "highlight.get",
                                     {"highlight_id": made["id"]}), 404, "not_found")
            continue
        [summary] = page["highlights"]
        assert summary["story_count"] == len(ids)
        # The chosen cover only where it is visible; otherwise the first visible story.
        assert summary["cover"]["id"] == ids[0]
        one = await ok(await rest(client, viewer, "highlight.get", {"highlight_id": made["id"]}))
        assert [s["id"] for s in one["stories"]] == ids
        assert all(s["expired"] for s in one["stories"])
        got = await ok(await rest(client, viewer, "story.get", {"story_id": ids[0]}))
        assert got["expired"] is True
        # Readable in the highlight, but not a live story: no views, reactions or replies.
        await refused(await rest(client, viewer, "story.view", {"story_id": ids[0]}),
                      404, "not_found")
    # Blocking hides the user's highlights altogether.
    await ok(await rest(client, author, "user.block", {"user_id": friend.id}), 204)
    await refused(await rest(client, friend, "highlight.list", {"user_id": author.id}),
                  404, "not_found")
    await refused(await rest(client, friend, "highlight.list", {"user_id": str(uuid.uuid4())}),
                  404, "not_found")


async def test_highlight_update_delete_and_their_rules(
    client: Client, settings: Settings
) -> None:
    author, other = await signup(client), await signup(client)
    media_id = await upload(client, author)
    a, b, c = [(await post_story(client, author, media_id=media_id))["id"] for _ in range(3)]
    theirs = (await post_story(client, other))["id"]
    for bad, field in (({"story_ids": []}, "story_ids"), ({"story_ids": [a, a]}, "story_ids"),
                       ({"story_ids": [theirs]}, "story_ids.0"), ({"title": ""}, "title"),
                       ({"title": "   "}, "title"), ({"title": "x" * 51}, "title"),
                       ({"story_ids": [a], "cover_story_id": b}, "cover_story_id")):
        payload = {"title": "t", "story_ids": [a], **bad}
        error = await refused(await rest(client, author, "highlight.create", payload), 400,
                              "invalid_input")
        assert field in fields_of(error), (bad, error)
    made = await ok(await rest(client, author, "highlight.create",
                               {"title": "t", "story_ids": [a, b]}), 201)
    hid = made["id"]
    moved = await ok(await rest(client, author, "highlight.update", {
        "highlight_id": hid, "add_story_ids": [c], "remove_story_ids": [a], "title": "new"}))
    assert moved["title"] == "new" and [s["id"] for s in moved["stories"]] == [b, c]
    ordered = await ok(await rest(client, author, "highlight.update", {
        "highlight_id": hid, "story_ids": [c, a, b], "cover_story_id": a}))
    assert [s["id"] for s in ordered["stories"]] == [c, a, b] and ordered["cover"]["id"] == a
    for bad in ({"story_ids": [a], "add_story_ids": [b]}, {"remove_story_ids": [a, b, c]},
                {"add_story_ids": [theirs]}, {"cover_story_id": theirs}):
        await refused(await rest(client, author, "highlight.update",
                                 {"highlight_id": hid, **bad}), 400, "invalid_input")
    # Someone who cannot see the highlight is told it does not exist; one who can, forbidden.
    await refused(await rest(client, other, "highlight.update",
                             {"highlight_id": hid, "title": "mine"}), 404, "not_found")
    await follow(settings, other, author)
    await refused(await rest(client, other, "highlight.update",
                             {"highlight_id": hid, "title": "mine"}), 403, "forbidden")
    await refused(await rest(client, other, "highlight.delete", {"highlight_id": hid}),
                  403, "forbidden")
    # Deleting a story takes it out of its highlights.
    await ok(await rest(client, author, "story.delete", {"story_id": a}), 204)
    after = await ok(await rest(client, author, "highlight.get", {"highlight_id": hid}))
    assert [s["id"] for s in after["stories"]] == [c, b] and after["cover"]["id"] == c
    await ok(await rest(client, author, "highlight.delete", {"highlight_id": hid}), 204)
    await refused(await rest(client, author, "highlight.get", {"highlight_id": hid}),
                  404, "not_found")
    await refused(await rest(client, author, "highlight.delete", {"highlight_id": hid}),
                  404, "not_found")


async def test_highlight_list_pages_newest_first(client: Client) -> None:
    author = await signup(client)
    clock = install_clock(client)
    story = (await post_story(client, author))["id"]
    made = []
    for n in range(3):
        clock.advance(seconds=1)
        made.append((await ok(await rest(client, author, "highlight.create",
                                         {"title": f"h{n}", "story_ids": [story]}), 201))["id"])
    first = await ok(await rest(client, author, "highlight.list",
                                {"user_id": author.id, "limit": 2}))
    assert [h["id"] for h in first["highlights"]] == made[:0:-1]
    second = await ok(await rest(client, author, "highlight.list",
                                 {"user_id": author.id, "cursor": first["next_cursor"]}))
    assert [h["id"] for h in second["highlights"]] == [made[0]]
    assert second["next_cursor"] is None


# -- the purge -------------------------------------------------------------------------------


async def test_purge_removes_expired_story_media_but_keeps_highlighted_and_shared(
    client: Client, settings: Settings
) -> None:
    author = await signup(client)
    lost, kept, sent, fresh = [await upload(client, author) for _ in range(4)]
    for media_id in (lost, kept, sent, fresh):
        await settled(client, author, media_id)
    clock = install_clock(client)
    old = {m: await post_story(client, author, media_id=m) for m in (lost, kept, sent)}
    await ok(await rest(client, author, "highlight.create",
                        {"title": "keep", "story_ids": [old[kept]["id"]]}), 201)
    peer = await signup(client)
    direct = await ok(await rest(client, author, "conversation.open_direct", {"user_id": peer.id}))
    await ok(await rest(client, author, "message.send", {
        "conversation_id": direct["id"], "media_ids": [sent], "client_id": "m1"}), 201)
    keys = {m: [r["storage_key"] for r in await sql(settings, """
                SELECT storage_key FROM media WHERE id = $1 UNION ALL
                SELECT storage_key FROM media_renditions WHERE media_id = $1""", uuid.UUID(m))]
            for m in (lost, kept, sent)}
    assert all(len(k) >= 2 for k in keys.values())
    services = client.app[SERVICES]
    retention = settings.story_media_retention_s
    # A day into retention nothing goes; a day past it, only the unshared, unhighlighted one.
    clock.advance(seconds=24 * 3600)
    await post_story(client, author, media_id=fresh)
    ours = [uuid.UUID(m) for m in (lost, kept, sent, fresh)]

    async def left() -> set[uuid.UUID]:
        rows = await sql(settings, "SELECT id FROM media WHERE id = ANY($1)", ours)
        return {r["id"] for r in rows}

    # The database is shared by the run's tests: passes may purge their media too, so only
    # this test's media is checked.
    await purge_once(services.db, services.blobs, clock.now + timedelta(days=1), retention)
    assert await left() == set(ours)
    result = await purge_once(services.db, services.blobs,
                              clock.now + timedelta(seconds=retention + 1), retention)
    assert result.media >= 1 and result.blob_failures == 0
    assert await left() == {uuid.UUID(m) for m in (kept, sent, fresh)}
    for media_id, story_keys in keys.items():
        exists = [await services.blobs.exists(k) for k in story_keys]
        assert exists == [media_id != lost] * len(story_keys), media_id
    archived = await ok(await rest(client, author, "story.get", {"story_id": old[lost]["id"]}))
    assert archived["media"] is None and archived["expired"] is True
    again = await purge_once(services.db, services.blobs,
                             clock.now + timedelta(seconds=retention + 1), retention)
    assert again.media == 0


# -- configured limits -----------------------------------------------------------------------


async def test_configured_limits_are_enforced(make_client: AppFactory, settings: Settings) -> None:
    client = await make_client(
        limits=Limits(story_caption_chars=5, highlights_max=1, highlight_stories_max=2),
        # The refused long caption below counts against story_create too: 1 + 4 posts.
        rates=Rates(story_create=(5, 3600), story_react=(2, 10)))
    author, fan = await signup(client), await signup(client)
    await follow(settings, fan, author)
    media_id = await upload(client, author)
    error = await refused(await rest(client, author, "story.create",
                                     {"media_id": media_id, "caption": "sixsix"}),
                          400, "invalid_input")
    assert error["details"]["fields"][0]["type"] == "string_too_long"
    a, b, c = [(await post_story(client, author, media_id=media_id, caption="ok"))["id"]
               for _ in range(3)]
    await post_story(client, author, media_id=media_id)
    error = await refused(await rest(client, author, "story.create", {"media_id": media_id}),
                          429, "rate_limited")
    assert error["details"]["retry_after"] >= 1
    error = await refused(await rest(client, author, "highlight.create",
                                     {"title": "t", "story_ids": [a, b, c]}), 400, "invalid_input")
    assert error["details"]["fields"][0]["type"] == "too_long"
    made = await ok(await rest(client, author, "highlight.create",
                               {"title": "t", "story_ids": [a, b]}), 201)
    error = await refused(await rest(client, author, "highlight.create",
                                     {"title": "u", "story_ids": [c]}), 409, "conflict")
    assert error["details"] == {"reason": "too_many_highlights", "limit": 1}
    error = await refused(await rest(client, author, "highlight.update",
                                     {"highlight_id": made["id"], "add_story_ids": [c]}),
                          400, "invalid_input")
    assert fields_of(error) == {"add_story_ids"}
    for kind in ("like", "love"):
        await ok(await rest(client, fan, "story.react", {"story_id": a, "kind": kind}))
    await refused(await rest(client, fan, "story.react", {"story_id": a, "kind": "wow"}),
                  429, "rate_limited")
