"""Story views: story.view counts each viewer once and tells the author live; story.viewer.list."""

from __future__ import annotations

import logging

from handlers import activities
from handlers.commands import command
from handlers.context import Context
from handlers.pagination import Position, decode_cursor, page_of
from handlers.rates import Rate
from handlers.scopes import Scope
from handlers.stories import active_story, own_story
from handlers.story_schemas import (
    StoryIdInput,
    StoryUserOut,
    StoryViewerOut,
    StoryViewOut,
    ViewersInput,
    ViewersPage,
)
from storage import stories as store

log = logging.getLogger(__name__)


@command("story.view", input=StoryIdInput, rest=("POST", "/stories/{story_id}/views"),
         scope=Scope.WRITE_CONTENT, output=StoryViewOut,
         rate=Rate("story_view"), activity=activities.STORY_VIEWED)
async def view(ctx: Context, data: StoryIdInput) -> StoryViewOut:
    """Mark an active story viewed; the author is told live on your first view only."""
    services, me = ctx.services, ctx.user.user_id
    story = await active_story(ctx, data.story_id)
    if story.author.id == me:
        return StoryViewOut(story_id=story.id, counted=False)
    count = await store.record_view(services.db, story.id, me, services.clock())
    if count is None:
        return StoryViewOut(story_id=story.id, counted=False)
    viewer = await store.user_brief(services.db, me)
    if viewer is not None:
        try:
            await services.realtime.send_to_user(story.author.id, "story.viewed", {
                "story_id": str(story.id), "viewer": StoryUserOut.of(viewer).model_dump(mode="json"),
                "view_count": count})
        except Exception:
            # The view is stored; the author sees it in story.viewer.list all the same.
            log.warning("story.viewed not published", extra={"story_id": str(story.id)})
    return StoryViewOut(story_id=story.id, counted=True)


@command("story.viewer.list", input=ViewersInput, rest=("GET", "/stories/{story_id}/viewers"),
         scope=Scope.READ_CONTENT, output=ViewersPage,
         rate=Rate("reads"))
async def viewers(ctx: Context, data: ViewersInput) -> ViewersPage:
    """Who viewed your story (active or archived), newest first, with their reactions."""
    story = await own_story(ctx, data.story_id)
    after = decode_cursor(data.cursor, "story.viewer.list")
    rows = await store.viewers(ctx.services.db, story.id, data.limit + 1,
                               None if after is None else (after.at, after.id))
    page, next_cursor = page_of(rows, data.limit, lambda v: Position(v.viewed_at, v.user.id))
    return ViewersPage(
        story_id=story.id, view_count=await store.view_count(ctx.services.db, story.id),
        viewers=[StoryViewerOut(user=StoryUserOut.of(v.user), viewed_at=v.viewed_at,
                           reaction=v.reaction) for v in page],
        next_cursor=next_cursor)
