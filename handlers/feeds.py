"""Feeds: the home feed, a user's, a clique's and a tag's items, comments, saved items.

Every list is cursor-paged (handlers/pagination.py) and shows only what the caller may
see (hs_can_see). A page holds `limit` items unless the list ends, or the server read
storage.feeds.SCAN_ROUNDS batches of mostly hidden rows: then it holds fewer (maybe none)
and next_cursor says where to go on. docs/feeds.md describes each list.
"""

from __future__ import annotations

from handlers.commands import command
from handlers.context import Context
from handlers.errors import CommandError
from handlers.feed_schemas import (
    CliqueItemsInput,
    CommentsInput,
    HomeInput,
    SavedInput,
    TagInput,
    UserItemsInput,
)
from handlers.item_schemas import ItemPage
from handlers.items import answers_page
from handlers.pagination import Position, decode_cursor, encode_cursor, page_of
from handlers.rates import Rate
from handlers.scopes import Scope
from storage import engagement as engagement_store
from storage import feeds as store
from storage.feeds import FeedPage, Mark
from storage.views.items import hydrate


def _after(cursor: str | None, list_name: str) -> Mark | None:
    position = decode_cursor(cursor, list_name)
    return None if position is None else (position.at, position.id)


async def _page(ctx: Context, page: FeedPage) -> ItemPage:
    cursor = None if page.next is None else encode_cursor(Position(*page.next))
    return ItemPage(items=await hydrate(ctx.services.db, ctx.user.user_id, page.items),
                    next_cursor=cursor)


@command("feed.list_home", input=HomeInput, rest=("GET", "/feeds/home"), scope=Scope.READ_CONTENT,
         output=ItemPage,
         rate=Rate("reads"))
async def home(ctx: Context, data: HomeInput) -> ItemPage:
    """Your home feed, newest first: people you follow, friends, you, and your cliques."""
    services = ctx.services
    page = await store.home(services.db, ctx.user.user_id, _after(data.cursor, "feed.list_home"),
                            data.limit, services.clock())
    return await _page(ctx, page)


@command("feed.list_user", input=UserItemsInput, rest=("GET", "/users/{user_id}/items"),
         scope=Scope.READ_CONTENT, output=ItemPage,
         rate=Rate("reads"))
async def user_items(ctx: Context, data: UserItemsInput) -> ItemPage:
    """A user's posts, notices, shares and slides that you may see, newest first."""
    services, me = ctx.services, ctx.user.user_id
    after = _after(data.cursor, "feed.list_user")
    access = await store.user_access(services.db, me, data.user_id)
    if not access.exists:
        raise CommandError("not_found", "no such user")
    if access.blocked:
        # Nothing crosses a block; say so at once rather than scan rows all hidden.
        return ItemPage(items=[], next_cursor=None)
    page = await store.by_user(services.db, me, data.user_id, data.kind, after, data.limit,
                               services.clock())
    return await _page(ctx, page)


@command("feed.list_clique", input=CliqueItemsInput, rest=("GET", "/cliques/{clique_id}/items"),
         scope=Scope.READ_CONTENT, output=ItemPage,
         rate=Rate("reads"))
async def clique_items(ctx: Context, data: CliqueItemsInput) -> ItemPage:
    """A clique's posts, newest first: a public clique's for anyone, a private one's for members."""
    services, me = ctx.services, ctx.user.user_id
    after = _after(data.cursor, "feed.list_clique")
    if not await store.may_read_clique(services.db, me, data.clique_id):
        raise CommandError("not_found", "no such clique")
    page = await store.by_clique(services.db, me, data.clique_id, after, data.limit,
                                 services.clock())
    return await _page(ctx, page)


@command("item.comment.list", input=CommentsInput, rest=("GET", "/items/{item_id}/comments"),
         scope=Scope.READ_CONTENT, output=ItemPage,
         rate=Rate("reads"))
async def comments(ctx: Context, data: CommentsInput) -> ItemPage:
    """The comments of an item you may see, oldest first; deleted ones stay as tombstones."""
    return await answers_page(ctx, data.item_id, data.cursor, data.limit, "item.comment.list")


@command("feed.list_tag", input=TagInput, rest=("GET", "/tags/{tag}"), scope=Scope.READ_CONTENT,
         output=ItemPage,
         rate=Rate("reads"))
async def tag(ctx: Context, data: TagInput) -> ItemPage:
    """Items carrying a #tag that you may see, newest first."""
    services = ctx.services
    page = await store.by_tag(services.db, ctx.user.user_id, data.tag,
                              _after(data.cursor, "feed.list_tag"), data.limit, services.clock())
    return await _page(ctx, page)


@command("feed.list_saved", input=SavedInput, rest=("GET", "/users/me/saved"), scope=Scope.READ_CONTENT,
         output=ItemPage,
         rate=Rate("reads"))
async def saved(ctx: Context, data: SavedInput) -> ItemPage:
    """Items you saved that you may still see, most recently saved first (deleted ones as tombstones)."""
    services, me = ctx.services, ctx.user.user_id
    rows = await engagement_store.saved_page(services.db, me, _after(data.cursor, "feed.list_saved"),
                                             data.limit + 1, services.clock())
    page, next_cursor = page_of(rows, data.limit, lambda row: Position(row[0], row[1].id))
    return ItemPage(items=await hydrate(services.db, me, [item for _, item in page]),
                    next_cursor=next_cursor)
