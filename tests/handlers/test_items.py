"""item.create, item.get and item.reply.list over REST: kinds, limits, bad input, idempotency."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from config import Rates, Settings
from tests.conftest import AppFactory, signup
from tests.handlers.conversation_helpers import fields_of, ok, refused, rest
from tests.handlers.item_helpers import create, fetch, get, sql
from tests.handlers.media_helpers import settled, uploaded

MISSING = "00000000-0000-0000-0000-000000000000"


async def test_post_comment_reply_and_counts(client: Any) -> None:
    alice, bob = await signup(client), await signup(client)
    post = await create(client, alice, body="hello #World #world @" + bob.username.upper())
    assert post["kind"] == "post" and post["author"]["id"] == alice.id
    assert post["author"]["username"] == alice.username
    assert post["tags"] == ["world"] and post["mentions"] == [bob.id]
    assert post["visibility"] == "public" and post["root_id"] is None and not post["deleted"]
    assert post["counts"] == {"replies": 0, "shares": 0, "quotes": 0, "reactions": 0, "views": 0}
    assert post["my_reaction"] is None and post["saved"] is False and post["shared"] is False
    comment = await create(client, bob, "comment", "nice", parent_id=post["id"])
    assert comment["root_id"] == post["id"] and comment["parent_id"] == post["id"]
    reply = await create(client, alice, "reply", "thanks", parent_id=comment["id"])
    assert reply["root_id"] == post["id"] and reply["parent_id"] == comment["id"]
    assert (await fetch(client, bob, post["id"]))["counts"]["replies"] == 1
    assert (await fetch(client, bob, comment["id"]))["counts"]["replies"] == 1
    page = await ok(await rest(client, bob, "item.reply.list", {"item_id": post["id"]}))
    assert [i["id"] for i in page["items"]] == [comment["id"]] and page["next_cursor"] is None
    page = await ok(await rest(client, bob, "item.reply.list", {"item_id": comment["id"]}))
    assert [i["id"] for i in page["items"]] == [reply["id"]]
    await refused(await get(client, bob, MISSING), 404, "not_found")


async def test_notices_answer_notices_only(client: Any) -> None:
    alice, bob = await signup(client), await signup(client)
    notice = await create(client, alice, "notice", "road closed")
    answer = await create(client, bob, "notice", "which road?", parent_id=notice["id"])
    deeper = await create(client, alice, "notice", "Main St", parent_id=answer["id"])
    assert answer["root_id"] == notice["id"] and deeper["root_id"] == notice["id"]
    assert deeper["parent_id"] == answer["id"]
    comment = await create(client, bob, "comment", "thanks", parent_id=notice["id"])
    assert comment["root_id"] == notice["id"]
    post = await create(client, alice)
    error = await refused(await rest(client, bob, "item.create", {
        "kind": "notice", "body": "x", "parent_id": post["id"]}), 400, "invalid_input")
    assert fields_of(error) == {"parent_id"}


async def test_thread_shape_rules(client: Any) -> None:
    alice, bob = await signup(client), await signup(client)
    post = await create(client, alice)
    comment = await create(client, bob, "comment", parent_id=post["id"])
    reply = await create(client, alice, "reply", parent_id=comment["id"])
    cases: list[tuple[dict[str, Any], str]] = [
        ({"kind": "comment", "body": "x"}, "parent_id"),
        ({"kind": "reply", "body": "x"}, "parent_id"),
        ({"kind": "post", "body": "x", "parent_id": post["id"]}, "parent_id"),
        ({"kind": "comment", "body": "x", "parent_id": comment["id"]}, "parent_id"),
        ({"kind": "comment", "body": "x", "parent_id": reply["id"]}, "parent_id"),
        ({"kind": "reply", "body": "x", "parent_id": post["id"]}, "parent_id"),
        ({"kind": "reply", "body": "x", "parent_id": reply["id"]}, "parent_id"),
        ({"kind": "comment", "body": "x", "parent_id": post["id"], "visibility": "public"},
         "visibility"),
        ({"kind": "comment", "body": "x", "parent_id": post["id"], "clique_id": MISSING},
         "clique_id"),
        ({"kind": "comment", "body": "x", "parent_id": post["id"], "quoted_id": post["id"]},
         "quoted_id"),
    ]
    for payload, field in cases:
        error = await refused(await rest(client, bob, "item.create", payload), 400,
                              "invalid_input")
        assert fields_of(error) == {field}, payload
    await refused(await rest(client, bob, "item.create", {
        "kind": "comment", "body": "x", "parent_id": MISSING}), 404, "not_found")


async def test_comments_off_is_forbidden_for_comments_and_their_replies(
    client: Any, database_url: str
) -> None:
    alice, bob = await signup(client), await signup(client)
    post = await create(client, alice, allow_comments=False)
    assert post["allow_comments"] is False
    error = await refused(await rest(client, bob, "item.create", {
        "kind": "comment", "body": "x", "parent_id": post["id"]}), 403, "forbidden")
    assert error["details"]["reason"] == "comments_off"
    open_post = await create(client, alice)
    comment = await create(client, bob, "comment", parent_id=open_post["id"])
    await ok(await rest(client, alice, "item.edit",
                        {"item_id": open_post["id"], "allow_comments": False}))
    await refused(await rest(client, alice, "item.create", {
        "kind": "reply", "body": "x", "parent_id": comment["id"]}), 403, "forbidden")


async def test_body_limits_per_kind(client: Any) -> None:
    alice = await signup(client)
    post = await create(client, alice, body="p" * 5000)
    notice = await create(client, alice, "notice", "n" * 500)
    comment = await create(client, alice, "comment", "c" * 2000, parent_id=post["id"])
    await create(client, alice, "reply", "r" * 2000, parent_id=comment["id"])
    too_long = [({"kind": "post", "body": "p" * 5001}),
                ({"kind": "notice", "body": "n" * 501}),
                ({"kind": "comment", "body": "c" * 2001, "parent_id": post["id"]}),
                ({"kind": "reply", "body": "r" * 2001, "parent_id": comment["id"]}),
                ({"kind": "notice", "body": "n" * 501, "parent_id": notice["id"]})]
    for payload in too_long:
        error = await refused(await rest(client, alice, "item.create", payload), 400,
                              "invalid_input")
        assert fields_of(error) == {"body"}, payload


async def test_bad_create_input(client: Any) -> None:
    alice = await signup(client)
    cases: list[dict[str, Any]] = [
        {},
        {"body": "no kind"},
        {"kind": "share", "body": "x"},
        {"kind": "story", "body": "x"},
        {"kind": "post"},
        {"kind": "post", "body": ""},
        {"kind": "post", "body": "   \n "},
        {"kind": "post", "body": "a\x00b"},
        {"kind": "post", "body": 5},
        {"kind": "post", "body": "x", "extra": 1},
        {"kind": "post", "body": "x", "visibility": "close_friends"},
        {"kind": "post", "body": "x", "visibility": "everyone"},
        {"kind": "post", "body": "x", "quote_policy": "friends"},
        {"kind": "post", "body": "x", "allow_comments": "maybe"},
        {"kind": "post", "body": "x", "parent_id": "not-a-uuid"},
        {"kind": "post", "body": "x", "media_ids": "x"},
        {"kind": "post", "body": "x", "media_ids": [str(uuid.uuid4()) for _ in range(11)]},
        {"kind": "post", "body": "x", "idempotency_key": ""},
        {"kind": "post", "body": "x", "idempotency_key": "k" * 65},
    ]
    for payload in cases:
        await refused(await rest(client, alice, "item.create", payload), 400, "invalid_input")
    resp = await client.post("/v1/items", data=b"not json", headers=alice.headers)
    await refused(resp, 400, "invalid_input")
    await refused(await client.post("/v1/items", json={"kind": "post", "body": "x"}), 401,
                  "unauthorized")


async def test_bad_input_of_the_read_commands(client: Any) -> None:
    alice = await signup(client)
    post = await create(client, alice)
    await refused(await client.get("/v1/items/nope", headers=alice.headers), 400,
                  "invalid_input")
    for params in ({"limit": "0"}, {"limit": "41"}, {"limit": "x"}, {"cursor": "!!"},
                   {"cursor": "bm9wZQ"}, {"extra": "1"}):
        await refused(await client.get(f"/v1/items/{post['id']}/replies", params=params,
                                       headers=alice.headers), 400, "invalid_input")
        await refused(await client.get(f"/v1/items/{post['id']}/edits", params=params,
                                       headers=alice.headers), 400, "invalid_input")
    await refused(await rest(client, alice, "item.reply.list", {"item_id": MISSING}), 404,
                  "not_found")
    await refused(await client.get(f"/v1/items/{post['id']}"), 401, "unauthorized")


async def test_replies_page_oldest_first_with_cursor(client: Any) -> None:
    alice, bob = await signup(client), await signup(client)
    post = await create(client, alice)
    made = [(await create(client, bob, "comment", f"c{n}", parent_id=post["id"]))["id"]
            for n in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"item_id": post["id"], "limit": 2}
        if cursor:
            params["cursor"] = cursor
        resp = await rest(client, alice, "item.reply.list", params)
        page = await ok(resp)
        assert len(page["items"]) <= 2
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            assert "Link" not in resp.headers
            break
        assert 'rel="next"' in resp.headers["Link"]
    assert seen == made


async def test_media_are_attached_and_visible_to_readers(client: Any) -> None:
    alice, bob = await signup(client), await signup(client)
    mine = await uploaded(client, alice)
    post = await create(client, alice, body=None, media_ids=[mine["id"]])
    assert post["body"] is None
    [media] = post["media"]
    assert media["id"] == mine["id"] and media["url"] == f"/v1/media/{mine['id']}/content"
    assert (await settled(client, alice, mine["id"]))["status"] == "ready"
    await ok(await rest(client, bob, "media.get", {"media_id": mine["id"]}))
    resp = await client.get(media["url"], headers=bob.headers)
    assert resp.status == 200 and resp.content_type.startswith("image/")
    theirs = await uploaded(client, bob)
    error = await refused(await rest(client, alice, "item.create", {
        "kind": "post", "media_ids": [mine["id"], theirs["id"]]}), 400, "invalid_input")
    assert fields_of(error) == {"media_ids.1"}
    error = await refused(await rest(client, alice, "item.create", {
        "kind": "post", "media_ids": [mine["id"], mine["id"]]}), 400, "invalid_input")
    assert fields_of(error) == {"media_ids"}
    # Once the post is deleted, the media is the uploader's alone again.
    await ok(await rest(client, alice, "item.delete", {"item_id": post["id"]}), 204)
    await refused(await rest(client, bob, "media.get", {"media_id": mine["id"]}), 404, "not_found")


async def test_ten_media_at_most(client: Any, database_url: str) -> None:
    alice = await signup(client)
    one = await uploaded(client, alice)
    ids = [one["id"]]
    for _ in range(10):  # copies of the row: the count is what is tested, not the bytes
        [row] = await sql(database_url, """
            INSERT INTO media (id, owner_id, kind, content_type, size_bytes, sha256, status,
                               storage_key)
            SELECT gen_random_uuid(), owner_id, kind, content_type, size_bytes, sha256, status,
                   storage_key FROM media WHERE id = $1 RETURNING id""", uuid.UUID(one["id"]))
        ids.append(str(row["id"]))
    post = await create(client, alice, media_ids=ids[:10])
    assert [m["id"] for m in post["media"]] == ids[:10]
    error = await refused(await rest(client, alice, "item.create", {
        "kind": "post", "body": "x", "media_ids": ids}), 400, "invalid_input")
    assert fields_of(error) == {"media_ids"}


async def test_mention_and_tag_caps(client: Any) -> None:
    alice = await signup(client)
    names = " ".join(f"@name{n:03}" for n in range(20))
    post = await create(client, alice, body=names)
    assert post["mentions"] == []  # nobody is called that
    error = await refused(await rest(client, alice, "item.create", {
        "kind": "post", "body": names + " @name999"}), 400, "invalid_input")
    assert error["details"]["fields"][0]["type"] == "too_many_mentions"
    tags = " ".join(f"#T{n}" for n in range(20))
    post = await create(client, alice, body=tags + " #t0 #T1 " + "#" + "x" * 65 + " a#b")
    assert sorted(post["tags"]) == sorted(f"t{n}" for n in range(20))
    error = await refused(await rest(client, alice, "item.create", {
        "kind": "post", "body": tags + " #t20"}), 400, "invalid_input")
    assert error["details"]["fields"][0]["type"] == "too_many_tags"
    post = await create(client, alice, body="#café_2024 #" + "y" * 64 + " email@" + alice.username)
    assert sorted(post["tags"]) == sorted(["café_2024", "y" * 64]) and post["mentions"] == []


async def test_tags_are_stored_with_the_item_time(client: Any, database_url: str) -> None:
    alice = await signup(client)
    post = await create(client, alice, body="#One #two")
    rows = await sql(database_url, """SELECT t.tag, t.created_at = i.created_at AS same
                                      FROM item_tags t JOIN items i ON i.id = t.item_id
                                      WHERE t.item_id = $1 ORDER BY t.tag""",
                     uuid.UUID(post["id"]))
    assert [(r["tag"], r["same"]) for r in rows] == [("one", True), ("two", True)]


async def test_idempotency_key_in_body_and_header(client: Any) -> None:
    alice = await signup(client)
    first = await create(client, alice, body="once", idempotency_key="k1")
    again = await create(client, alice, body="once", idempotency_key="k1")
    assert again["id"] == first["id"]
    resp = await client.post("/v1/items", json={"kind": "post", "body": "once"},
                             headers={**alice.headers, "Idempotency-Key": "k1"})
    assert (await ok(resp, 201))["id"] == first["id"]
    error = await refused(await rest(client, alice, "item.create", {
        "kind": "post", "body": "something else", "idempotency_key": "k1"}), 409, "conflict")
    assert error["details"]["reason"] == "idempotency_key_reused"
    resp = await client.post("/v1/items", json={"kind": "post", "body": "x",
                                                "idempotency_key": "k2"},
                             headers={**alice.headers, "Idempotency-Key": "k3"})
    await refused(resp, 400, "invalid_input")
    # Keys are per author: someone else's k1 is a new item.
    bob = await signup(client)
    assert (await create(client, bob, body="once", idempotency_key="k1"))["id"] != first["id"]


async def test_concurrent_creates_with_one_key_make_one_item(
    client: Any, database_url: str
) -> None:
    alice = await signup(client)
    post = await create(client, alice)
    payload = {"kind": "comment", "body": "once", "parent_id": post["id"],
               "idempotency_key": "same"}
    answers = await asyncio.gather(*(rest(client, alice, "item.create", payload)
                                     for _ in range(6)))
    ids = {(await ok(resp, 201))["id"] for resp in answers}
    assert len(ids) == 1
    [row] = await sql(database_url, "SELECT count(*) AS n FROM items WHERE parent_id = $1",
                      uuid.UUID(post["id"]))
    assert row["n"] == 1
    assert (await fetch(client, alice, post["id"]))["counts"]["replies"] == 1


async def test_creates_are_rate_limited(make_client: AppFactory, settings: Settings) -> None:
    client = await make_client(rates=Rates(item_create=(3, 60)))
    alice = await signup(client)
    for _ in range(3):
        await create(client, alice)
    error = await refused(await rest(client, alice, "item.create", {
        "kind": "post", "body": "x"}), 429, "rate_limited")
    assert error["details"]["retry_after"] >= 1
    # A retry of an item already made is not a new create, and is not counted.
    bob = await signup(client)
    made = await create(client, bob, idempotency_key="r")
    for _ in range(4):
        assert (await create(client, bob, idempotency_key="r"))["id"] == made["id"]
