"""Feed paging: order and cursors with equal timestamps, full pages past hidden rows, limits."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import jwt
import pytest

from config import Rates, Settings
from server.resources import build_token_service
from storage.feeds import BATCH_MAX, BATCH_SLACK, SCAN_ROUNDS
from storage.items import CHILDREN_SCAN_MAX
from tests.conftest import Account, AppFactory, signup
from tests.handlers.conversation_helpers import fields_of, ok, refused, rest
from tests.handlers.feed_helpers import T0, Client, clique, ids, join, page, put, relate


@pytest.fixture
async def client(make_client: AppFactory) -> Client:
    """The app, with room for the many sign-ups these tests make from one address."""
    return await make_client(rates=Rates(signup=(1000, 3600)))


LISTS = ["feed.list_home", "feed.list_user", "feed.list_clique", "feed.list_tag"]


async def make_list(client: Client, db: asyncpg.Connection, name: str, viewer: Account,
                    authors: list[Account], visible: int, hidden: int,
                    same_time: int = 5) -> tuple[dict[str, Any], list[str]]:
    """Items for one list, `same_time` to a timestamp, hidden ones interleaved: (payload, expected ids)."""
    tag = f"t{uuid.uuid4().hex[:10]}"
    clique_id = await clique(db, authors[0]) if name == "feed.list_clique" else None
    for author in authors:
        if name == "feed.list_home":
            await relate(client, "follows", viewer, author)
        if clique_id is not None and author is not authors[0]:
            await join(db, clique_id, author)
    hider = None
    if clique_id is not None:
        await join(db, clique_id, viewer)
        # In a clique every member sees every post: hidden rows come from a member the viewer blocked.
        hider = await signup(client)
        await join(db, clique_id, hider)
        await ok(await rest(client, viewer, "user.block", {"user_id": hider.id}), 204)
    shown: list[tuple[Any, uuid.UUID]] = []
    for n in range(visible + hidden):
        author = authors[n % len(authors)]
        at = T0 + timedelta(seconds=n // same_time)
        # Every third row (up to `hidden`) is one the viewer may not see.
        secret = n % 3 == 2 and hidden > 0
        hidden -= secret
        if secret and hider is not None:
            item = await put(db, hider, at=at, clique=clique_id, tags=(tag,))
        else:
            item = await put(db, author, at=at, visibility="friends" if secret else "public",
                             clique=clique_id, tags=(tag,))
        if not secret:
            shown.append((at, uuid.UUID(item)))
    payloads: dict[str, dict[str, Any]] = {
        "feed.list_user": {"user_id": authors[0].id}, "feed.list_clique": {"clique_id": clique_id},
        "feed.list_tag": {"tag": tag}}
    payload = payloads.get(name, {})
    return payload, [str(i) for _, i in sorted(shown, reverse=True)]


@pytest.mark.parametrize("name", LISTS)
async def test_pages_cover_the_list_once_in_order(client: Client, db: Any, name: str) -> None:
    viewer = await signup(client)
    authors = [await signup(client)] if name == "feed.list_user" else [await signup(client)
                                                                  for _ in range(3)]
    payload, expected = await make_list(client, db, name, viewer, authors, visible=31, hidden=14)
    seen: list[str] = []
    cursor = None
    sizes = []
    while True:
        body = await page(client, viewer, name, limit=7, **payload,
                          **({"cursor": cursor} if cursor else {}))
        seen += [item["id"] for item in body["items"]]
        sizes.append(len(body["items"]))
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == expected  # newest first, ties by id, no duplicates, no gaps
    assert sizes == [7, 7, 7, 7, 3]  # hidden rows never shorten a page


async def test_full_page_past_a_long_run_of_hidden_items(client: Client, db: Any) -> None:
    viewer, author = await signup(client), await signup(client)
    await relate(client, "follows", viewer, author)
    older = [await put(db, author, n) for n in range(25)]
    await db.execute(
        """INSERT INTO items (kind, author_id, body, visibility, created_at)
           SELECT 'post', $1, 'secret', 'friends', $2::timestamptz + g * interval '1 second'
           FROM generate_series(1, 300) g""", uuid.UUID(author.id), T0 + timedelta(seconds=100))
    for name, payload in (("feed.list_home", {}), ("feed.list_user", {"user_id": author.id})):
        body = await page(client, viewer, name, **payload)
        assert [i["id"] for i in body["items"]] == older[::-1][:20] and body["next_cursor"]


async def test_hidden_rows_past_the_scan_budget_give_a_short_page_and_a_cursor(
        client: Client, db: Any) -> None:
    viewer, author = await signup(client), await signup(client)
    await relate(client, "follows", viewer, author)
    older = [await put(db, author, n) for n in range(3)]
    first = 20 + 1 + BATCH_SLACK
    budget = sum(min(first * 2 ** r, BATCH_MAX) for r in range(SCAN_ROUNDS))
    await db.execute(
        """INSERT INTO items (kind, author_id, body, visibility, created_at)
           SELECT 'post', $1, 'secret', 'friends', $2::timestamptz + g * interval '1 second'
           FROM generate_series(1, $3) g""",
        uuid.UUID(author.id), T0 + timedelta(seconds=100), budget + 50)
    for name, payload in (("feed.list_home", {}), ("feed.list_user", {"user_id": author.id})):
        body = await page(client, viewer, name, **payload)
        assert body["items"] == [] and body["next_cursor"]
        assert await ids(client, viewer, name, **payload) == older[::-1]


async def test_link_header_points_at_the_next_page(client: Client, db: Any) -> None:
    viewer, author = await signup(client), await signup(client)
    await relate(client, "follows", viewer, author)
    newer, older = await put(db, author, 2), await put(db, author, 1)
    resp = await client.get("/v1/feeds/home", params={"limit": "1"}, headers=viewer.headers)
    body = await ok(resp)
    assert [i["id"] for i in body["items"]] == [newer]
    link = resp.headers["Link"]
    assert link.endswith('>; rel="next"') and f"cursor={body['next_cursor']}" in link
    resp = await client.get(link[1:link.index(">")], headers=viewer.headers)
    body = await ok(resp)
    assert [i["id"] for i in body["items"]] == [older] and body["next_cursor"] is None
    assert "Link" not in resp.headers


FEEDS = {"feed.list_home": {}, "feed.list_user": {"user_id": str(uuid.uuid4())},
         "feed.list_clique": {"clique_id": str(uuid.uuid4())},
         "item.comment.list": {"item_id": str(uuid.uuid4())},
         "feed.list_tag": {"tag": "cats"}, "feed.list_saved": {}}


@pytest.mark.parametrize("name", FEEDS)
async def test_limits_and_cursors_are_checked(client: Client, name: str) -> None:
    viewer = await signup(client)
    for limit in (0, 41, -1):
        error = await refused(await rest(client, viewer, name, {**FEEDS[name], "limit": limit}),
                              400, "invalid_input")
        assert fields_of(error) == {"limit"}
    for cursor in ("nope", "bm9wZQ", "MjAyNi0wMS0wMVQwMDowMDowMCswMDowMHxub3QtYS11dWlk", "x" * 201):
        error = await refused(await rest(client, viewer, name, {**FEEDS[name], "cursor": cursor}),
                              400, "invalid_input")
        assert fields_of(error) == {"cursor"}
    error = await refused(await rest(client, viewer, name, {**FEEDS[name], "extra": 1}), 400,
                          "invalid_input")
    if name in ("feed.list_home", "feed.list_tag", "feed.list_saved"):
        await ok(await rest(client, viewer, name, {**FEEDS[name], "limit": 40}))
    resp = await client.get("/v1/feeds/home")
    await refused(resp, 401, "unauthorized")


@pytest.mark.parametrize("name", FEEDS)
async def test_feeds_need_the_content_read_scope(client: Client, settings: Settings,
                                                 name: str) -> None:
    viewer = await signup(client)
    claims = jwt.decode(viewer.access_token, options={"verify_signature": False})
    tokens = build_token_service(settings)
    for scopes, status in ((["read:profile"], 403), (["read:content"], None)):
        token = tokens.issue(uuid.UUID(claims["sub"]), uuid.UUID(claims["sid"]), scopes).token
        limited = Account(viewer.id, viewer.username, viewer.email, viewer.password, token,
                          viewer.refresh_token)
        resp = await rest(client, limited, name, FEEDS[name])
        if status == 403:
            error = await refused(resp, 403, "forbidden")
            assert error["details"]["required_scope"] == "read:content"
        else:  # past the scope check: an answer, or not_found for the made-up ids
            assert resp.status in (200, 404), await resp.text()


@pytest.mark.parametrize("name", ["item.comment.list", "item.reply.list"])
async def test_hidden_answers_cost_a_bounded_read_per_page(client: Client, db: Any,
                                                           name: str) -> None:
    """Hundreds of comments by someone the viewer blocked: short pages, a cursor, no long scan."""
    author, viewer, pest, friend = [await signup(client) for _ in range(4)]
    post = await put(db, author, 0)
    hidden_count = CHILDREN_SCAN_MAX + 50
    await db.executemany(
        """INSERT INTO items (kind, author_id, parent_id, root_id, body, created_at)
           VALUES ('comment', $1, $2, $2, 'spam', $3)""",
        [(uuid.UUID(pest.id), uuid.UUID(post), T0 + timedelta(seconds=1 + i))
         for i in range(hidden_count)])
    shown = [await put(db, friend, hidden_count + 10 + i, kind="comment", parent=post, root=post)
             for i in range(3)]
    await ok(await rest(client, viewer, "user.block", {"user_id": pest.id}), 204)
    first = await page(client, viewer, name, item_id=post, limit=20)
    # The first page read its cap of hidden answers and stopped, saying where to go on.
    assert first["items"] == [] and first["next_cursor"] is not None
    assert await ids(client, viewer, name, item_id=post) == shown
    # Someone who sees them all pages through all of them, 40 at a time.
    assert len(await ids(client, author, name, item_id=post, limit=40)) == hidden_count + 3
