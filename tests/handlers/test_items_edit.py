"""item.edit, item.edit.list and item.delete: history, authorization, tombstones."""

from __future__ import annotations

import uuid
from typing import Any

import jwt

from config import Settings
from server.resources import build_token_service
from tests.conftest import signup
from tests.handlers.conversation_helpers import ok, refused, rest
from tests.handlers.item_helpers import create, fetch, notes, sql
from tests.handlers.media_helpers import uploaded
from tests.handlers.social_helpers import until


async def test_edit_keeps_history_newest_first(client: Any) -> None:
    alice, bob = await signup(client), await signup(client)
    post = await create(client, alice, body="v1")
    assert post["edited_at"] is None
    for body in ("v2", "v3", "v4"):
        edited = await ok(await rest(client, alice, "item.edit", {"item_id": post["id"],
                                                                   "body": body}))
        assert edited["body"] == body and edited["edited_at"] is not None
    page = await ok(await rest(client, bob, "item.edit.list", {"item_id": post["id"]}))
    assert [e["body"] for e in page["edits"]] == ["v3", "v2", "v1"]
    assert page["next_cursor"] is None
    first = await ok(await rest(client, bob, "item.edit.list", {"item_id": post["id"], "limit": 2}))
    assert [e["body"] for e in first["edits"]] == ["v3", "v2"]
    rest_page = await ok(await rest(client, bob, "item.edit.list", {
        "item_id": post["id"], "limit": 2, "cursor": first["next_cursor"]}))
    assert [e["body"] for e in rest_page["edits"]] == ["v1"] and rest_page["next_cursor"] is None
    # A cursor of another list is refused, not misread.
    for _ in range(2):
        await create(client, bob, "comment", parent_id=post["id"])
    replies = await ok(await rest(client, bob, "item.reply.list", {"item_id": post["id"],
                                                                "limit": 1}))
    error = await refused(await rest(client, bob, "item.edit.list", {
        "item_id": post["id"], "cursor": replies["next_cursor"]}), 400, "invalid_input")
    assert error["details"]["fields"][0]["field"] == "cursor"
    # Settings alone are no new version; an unchanged body neither.
    changed = await ok(await rest(client, alice, "item.edit", {
        "item_id": post["id"], "allow_comments": False, "quote_policy": "nobody",
        "visibility": "followers", "body": "v4"}))
    assert (changed["allow_comments"], changed["quote_policy"], changed["visibility"]) == (
        False, "nobody", "followers")
    assert changed["edited_at"] == edited["edited_at"]
    page = await ok(await rest(client, alice, "item.edit.list", {"item_id": post["id"]}))
    assert len(page["edits"]) == 3


async def test_edit_reparses_mentions_and_tags_and_notifies_new_mentions(client: Any) -> None:
    alice, bob, carol = [await signup(client) for _ in range(3)]
    post = await create(client, alice, body=f"#old @{bob.username}")
    await until(lambda: notes(client, bob, "mention"))
    edited = await ok(await rest(client, alice, "item.edit", {
        "item_id": post["id"], "body": f"#new @{bob.username} @{carol.username}"}))
    assert edited["tags"] == ["new"] and sorted(edited["mentions"]) == sorted([bob.id, carol.id])
    [note] = await until(lambda: notes(client, carol, "mention"))
    assert note["subject"]["id"] == post["id"]
    assert len(await notes(client, bob, "mention")) == 1


async def test_edit_rules(client: Any) -> None:
    alice, bob = await signup(client), await signup(client)
    post = await create(client, alice)
    notice = await create(client, alice, "notice", "n")
    hidden = await create(client, alice, visibility="private")
    error = await refused(await rest(client, bob, "item.edit", {"item_id": post["id"],
                                                                "body": "mine"}), 403,
                          "forbidden")
    assert error["details"]["reason"] == "not_author"
    await refused(await rest(client, bob, "item.edit", {"item_id": hidden["id"], "body": "x"}),
                  404, "not_found")
    await refused(await rest(client, alice, "item.edit", {"item_id": str(uuid.uuid4()),
                                                          "body": "x"}), 404, "not_found")
    bad: list[dict[str, Any]] = [
        {"item_id": post["id"]},
        {"item_id": post["id"], "body": ""},
        {"item_id": post["id"], "body": " "},
        {"item_id": post["id"], "body": None},
        {"item_id": post["id"], "body": "p" * 5001},
        {"item_id": post["id"], "body": "a\x00"},
        {"item_id": post["id"], "visibility": None},
        {"item_id": post["id"], "visibility": "close_friends"},
        {"item_id": post["id"], "allow_comments": None},
        {"item_id": post["id"], "quote_policy": "friends"},
        {"item_id": post["id"], "kind": "notice"},
        {"item_id": notice["id"], "body": "n" * 501},
        {"item_id": post["id"], "body": " ".join(f"#t{n}" for n in range(21))},
    ]
    for payload in bad:
        await refused(await rest(client, alice, "item.edit", payload), 400, "invalid_input")
    assert (await fetch(client, alice, post["id"]))["body"] == "hi"
    await ok(await rest(client, alice, "item.delete", {"item_id": post["id"]}), 204)
    error = await refused(await rest(client, alice, "item.edit", {"item_id": post["id"],
                                                                  "body": "x"}), 409, "conflict")
    assert error["details"]["reason"] == "deleted"


async def test_media_only_post_may_clear_its_body(client: Any) -> None:
    alice = await signup(client)
    media = await uploaded(client, alice)
    post = await create(client, alice, body="caption", media_ids=[media["id"]])
    edited = await ok(await rest(client, alice, "item.edit", {"item_id": post["id"],
                                                              "body": None}))
    assert edited["body"] is None and len(edited["media"]) == 1


async def test_delete_leaves_a_tombstone_with_reachable_answers(
    client: Any, database_url: str
) -> None:
    alice, bob = await signup(client), await signup(client)
    post = await create(client, alice, body=f"#gone @{bob.username}")
    await ok(await rest(client, alice, "item.edit", {"item_id": post["id"],
                                                     "body": f"#gone @{bob.username} v2"}))
    comment = await create(client, bob, "comment", "c", parent_id=post["id"])
    reply = await create(client, alice, "reply", "r", parent_id=comment["id"])
    await refused(await rest(client, alice, "item.delete", {"item_id": comment["id"]}), 403,
                  "forbidden")
    await ok(await rest(client, bob, "item.delete", {"item_id": comment["id"]}), 204)
    await ok(await rest(client, alice, "item.delete", {"item_id": post["id"]}), 204)
    await ok(await rest(client, alice, "item.delete", {"item_id": post["id"]}), 204)
    tomb = await fetch(client, bob, post["id"])
    assert tomb["deleted"] is True and tomb["body"] is None and tomb["media"] == []
    assert tomb["mentions"] == [] and tomb["tags"] == []
    # reply_count keeps the deleted comment: it stays in place in the thread.
    assert tomb["counts"]["replies"] == 1
    page = await ok(await rest(client, bob, "item.reply.list", {"item_id": post["id"]}))
    [dead] = page["items"]
    assert dead["id"] == comment["id"] and dead["deleted"] is True and dead["body"] is None
    page = await ok(await rest(client, bob, "item.reply.list", {"item_id": comment["id"]}))
    assert [i["id"] for i in page["items"]] == [reply["id"]] and page["items"][0]["body"] == "r"
    assert (await ok(await rest(client, bob, "item.edit.list", {"item_id": post["id"]})))[
        "edits"] == []
    for table in ("item_tags", "item_mentions", "item_edits"):
        rows = await sql(database_url, f"SELECT 1 FROM {table} WHERE item_id = $1",
                         uuid.UUID(post["id"]))
        assert rows == [], table
    # A deleted thread takes no new answers.
    error = await refused(await rest(client, bob, "item.create", {
        "kind": "comment", "body": "late", "parent_id": post["id"]}), 409, "conflict")
    assert error["details"]["reason"] == "deleted"
    await refused(await rest(client, bob, "item.create", {
        "kind": "reply", "body": "late", "parent_id": comment["id"]}), 409, "conflict")


async def test_delete_authorization_and_bad_input(client: Any) -> None:
    alice, bob = await signup(client), await signup(client)
    hidden = await create(client, alice, visibility="private")
    await refused(await rest(client, bob, "item.delete", {"item_id": hidden["id"]}), 404,
                  "not_found")
    await refused(await rest(client, alice, "item.delete", {"item_id": str(uuid.uuid4())}), 404,
                  "not_found")
    resp = await client.delete("/v1/items/not-a-uuid", headers=alice.headers)
    await refused(resp, 400, "invalid_input")
    resp = await client.delete(f"/v1/items/{hidden['id']}", json={"extra": 1},
                               headers=alice.headers)
    await refused(resp, 400, "invalid_input")
    await refused(await client.delete(f"/v1/items/{hidden['id']}"), 401, "unauthorized")
    assert (await fetch(client, alice, hidden["id"]))["deleted"] is False


async def test_shares_stories_and_slides_are_deleted_by_their_own_commands(client: Any) -> None:
    alice, bob = await signup(client), await signup(client)
    post = await create(client, alice)
    share = (await ok(await rest(client, bob, "item.share", {"item_id": post["id"]})))["share"]
    error = await refused(await rest(client, bob, "item.delete", {"item_id": share["id"]}), 400,
                          "invalid_input")
    assert error["details"]["fields"][0]["type"] == "wrong_kind"
    assert "item.unshare" in error["message"]
    assert (await fetch(client, alice, post["id"]))["counts"]["shares"] == 1


async def test_content_scopes(client: Any, settings: Settings) -> None:
    alice = await signup(client)
    post = await create(client, alice)
    claims = jwt.decode(alice.access_token, options={"verify_signature": False})
    tokens = build_token_service(settings)
    read_only = tokens.issue(uuid.UUID(claims["sub"]), uuid.UUID(claims["sid"]),
                             ["read:content"]).token
    resp = await client.get(f"/v1/items/{post['id']}", headers={"Authorization": f"Bearer {read_only}"})
    assert (await ok(resp))["id"] == post["id"]
    for method, path, body in (("POST", "/v1/items", {"kind": "post", "body": "x"}),
                               ("PATCH", f"/v1/items/{post['id']}", {"body": "x"}),
                               ("DELETE", f"/v1/items/{post['id']}", None)):
        resp = await client.request(method, path, json=body, headers={"Authorization": f"Bearer {read_only}"})
        error = await refused(resp, 403, "forbidden")
        assert error["details"]["required_scope"] == "write:content"
    nothing = tokens.issue(uuid.UUID(claims["sub"]), uuid.UUID(claims["sid"]),
                           ["read:profile"]).token
    resp = await client.get(f"/v1/items/{post['id']}/replies", headers={"Authorization": f"Bearer {nothing}"})
    assert (await refused(resp, 403, "forbidden"))["details"]["required_scope"] == "read:content"
