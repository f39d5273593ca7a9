"""Highlights: stories (active or expired) an author keeps on their profile under a title."""

from __future__ import annotations

import uuid
from typing import Any

from handlers.commands import command
from handlers.context import Context
from handlers.errors import CommandError, invalid
from handlers.pagination import Position, decode_cursor, page_of
from handlers.rates import Rate
from handlers.scopes import Scope
from handlers.story_schemas import (
    HighlightCreateInput,
    HighlightIdInput,
    HighlightListInput,
    HighlightOut,
    HighlightPage,
    HighlightSummary,
    HighlightUpdateInput,
    highlight_outs,
)
from storage import blocks as block_store
from storage import stories as store
from storage import story_highlights as highlight_store


def _no_highlight() -> CommandError:
    return CommandError("not_found", "no such highlight")


def _check_size(ctx: Context, field: str, story_ids: list[uuid.UUID]) -> None:
    limit = ctx.services.settings.limits.highlight_stories_max
    if len(story_ids) > limit:
        raise invalid(field, f"a highlight holds at most {limit} stories", "too_long")


async def _check_stories(ctx: Context, conn: Any, field: str, story_ids: list[uuid.UUID]) -> None:
    """Each id must be one of the caller's stories (expired or not), listed once."""
    if len(set(story_ids)) != len(story_ids):
        raise invalid(field, "the same story is listed twice", "duplicate_story")
    own = await highlight_store.own_stories_among(conn, ctx.user.user_id, story_ids)
    for index, story_id in enumerate(story_ids):
        if story_id not in own:
            raise invalid(f"{field}.{index}", "no such story among yours", "story_not_found")


def _check_cover(cover: uuid.UUID | None, story_ids: list[uuid.UUID]) -> None:
    if cover is not None and cover not in story_ids:
        raise invalid("cover_story_id", "the cover must be one of the highlight's stories",
                      "cover_not_in_highlight")


def _title(title: str) -> str:
    if not title.strip():
        raise invalid("title", "the title must not be blank", "blank")
    return title.strip()


async def _highlight_out(ctx: Context, highlight_id: uuid.UUID) -> HighlightOut:
    found = await highlight_store.view(ctx.services.db, highlight_id, ctx.user.user_id)
    if found is None:
        raise _no_highlight()
    [out] = await highlight_outs(ctx.services.db, [found], ctx.user.user_id,
                                 ctx.services.clock(), with_stories=True)
    return out


@command("highlight.create", input=HighlightCreateInput, rest=("POST", "/highlights"),
         scope=Scope.WRITE_CONTENT, status=201, output=HighlightOut,
         rate=Rate("highlight"))
async def highlight_create(ctx: Context, data: HighlightCreateInput) -> HighlightOut:
    """Keep some of your stories (active or expired) on your profile under a title."""
    services, me = ctx.services, ctx.user.user_id
    title = _title(data.title)
    limit = services.settings.limits.highlights_max
    _check_cover(data.cover_story_id, data.story_ids)
    async with services.db.transaction() as conn:
        await store.lock_author(conn, me)
        if await highlight_store.count_for(conn, me) >= limit:
            raise CommandError("conflict", f"you have {limit} highlights already",
                               {"reason": "too_many_highlights", "limit": limit})
        _check_size(ctx, "story_ids", data.story_ids)
        await _check_stories(ctx, conn, "story_ids", data.story_ids)
        made = await highlight_store.insert(conn, me, title, data.cover_story_id,
                                            services.clock())
        await highlight_store.set_stories(conn, made.id, data.story_ids)
    return await _highlight_out(ctx, made.id)


async def _own_highlight(ctx: Context, conn: Any, highlight_id: uuid.UUID) -> highlight_store.Highlight:
    found = await highlight_store.get_locked(conn, highlight_id)
    if found is None:
        raise _no_highlight()
    if found.owner_id != ctx.user.user_id:
        if await highlight_store.view(ctx.services.db, highlight_id, ctx.user.user_id) is None:
            raise _no_highlight()
        raise CommandError("forbidden", "only the highlight's owner can change it",
                           {"reason": "not_owner"})
    return found


@command("highlight.update", input=HighlightUpdateInput,
         rest=("PATCH", "/highlights/{highlight_id}"), scope=Scope.WRITE_CONTENT,
         output=HighlightOut,
         rate=Rate("highlight"))
async def highlight_update(ctx: Context, data: HighlightUpdateInput) -> HighlightOut:
    """Rename a highlight, change its stories (whole list, or add/remove) or its cover."""
    services = ctx.services
    title = None if data.title is None else _title(data.title)
    async with services.db.transaction() as conn:
        current = await _own_highlight(ctx, conn, data.highlight_id)
        before = await highlight_store.story_ids(conn, current.id)
        if data.story_ids is not None:
            after, field = data.story_ids, "story_ids"
            await _check_stories(ctx, conn, field, after)
        else:
            added = [s for s in dict.fromkeys(data.add_story_ids) if s not in before]
            await _check_stories(ctx, conn, "add_story_ids", added)
            removed = set(data.remove_story_ids)
            after, field = [s for s in before if s not in removed] + added, "add_story_ids"
        _check_size(ctx, field, after)
        if not after:
            raise invalid("remove_story_ids", "a highlight keeps at least one story; delete "
                          "the highlight instead", "empty_highlight")
        if "cover_story_id" in data.model_fields_set:
            cover = data.cover_story_id
            _check_cover(cover, after)
        else:
            cover = current.cover_story_id if current.cover_story_id in after else None
        await highlight_store.update(conn, current.id, title or current.title, cover,
                                     services.clock())
        if after != before:
            await highlight_store.set_stories(conn, current.id, after)
    return await _highlight_out(ctx, data.highlight_id)


@command("highlight.delete", input=HighlightIdInput,
         rest=("DELETE", "/highlights/{highlight_id}"), scope=Scope.WRITE_CONTENT, status=204,
         rate=Rate("highlight"))
async def highlight_delete(ctx: Context, data: HighlightIdInput) -> None:
    """Delete one of your highlights; its stories stay (in your archive)."""
    async with ctx.services.db.transaction() as conn:
        found = await _own_highlight(ctx, conn, data.highlight_id)
        await highlight_store.delete(conn, found.id)


@command("highlight.get", input=HighlightIdInput, rest=("GET", "/highlights/{highlight_id}"),
         scope=Scope.READ_CONTENT, output=HighlightOut,
         rate=Rate("reads"))
async def highlight_get(ctx: Context, data: HighlightIdInput) -> HighlightOut:
    """A highlight with the stories you may see in it, in the owner's order."""
    return await _highlight_out(ctx, data.highlight_id)


@command("highlight.list", input=HighlightListInput, rest=("GET", "/users/{user_id}/highlights"),
         scope=Scope.READ_CONTENT, output=HighlightPage,
         rate=Rate("reads"))
async def highlight_list(ctx: Context, data: HighlightListInput) -> HighlightPage:
    """A user's highlights, newest first, each with its cover and how many stories you may see."""
    db, me = ctx.services.db, ctx.user.user_id
    owner = await store.user_brief(db, data.user_id)
    if owner is None or (data.user_id != me and
                         await block_store.is_blocked_either_way(db, me, data.user_id)):
        raise CommandError("not_found", "no such user")
    after = decode_cursor(data.cursor, "highlight.list")
    rows = await highlight_store.list_for(db, data.user_id, me, data.limit + 1,
                                          None if after is None else (after.at, after.id))
    page, next_cursor = page_of(rows, data.limit,
                                lambda v: Position(v.highlight.created_at, v.highlight.id))
    outs = await highlight_outs(db, page, me, ctx.services.clock(), with_stories=False)
    return HighlightPage(highlights=[HighlightSummary.model_validate(o.model_dump(
        exclude={"stories"})) for o in outs], next_cursor=next_cursor)
