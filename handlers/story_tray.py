"""The story tray (story.list_feed): active stories of the people you follow and your friends."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from handlers.commands import command
from handlers.context import Context
from handlers.pagination import PageInput, Position, decode_cursor, page_of
from handlers.rates import Rate
from handlers.scopes import Scope
from handlers.story_schemas import FeedGroup, FeedPage, StoryOut, story_outs
from storage import stories as store

# The tray sorts unseen authors first; shifting their sort time by this much keeps its
# cursor a plain (timestamp, id) position (handlers/pagination.py).
UNSEEN_SHIFT = timedelta(days=366 * 1000)


def _feed_position(author: store.FeedAuthor) -> Position:
    shift = UNSEEN_SHIFT if author.has_unseen else timedelta(0)
    return Position(author.latest_at + shift, author.author_id)


def _feed_after(position: Position | None,
                now: datetime) -> tuple[bool, datetime, uuid.UUID] | None:
    if position is None:
        return None
    unseen = position.at > now + UNSEEN_SHIFT / 2
    return unseen, position.at - UNSEEN_SHIFT if unseen else position.at, position.id


@command("story.list_feed", input=PageInput, rest=("GET", "/stories/feed"), scope=Scope.READ_CONTENT,
         output=FeedPage,
         rate=Rate("reads"))
async def feed(ctx: Context, data: PageInput) -> FeedPage:
    """Active stories of the people you follow and your friends, grouped by author.

    Authors with a story you have not viewed come first, then by their newest story;
    a page holds up to `limit` authors, each with all their stories you may see.
    """
    db, me, now = ctx.services.db, ctx.user.user_id, ctx.services.clock()
    after = _feed_after(decode_cursor(data.cursor, "story.list_feed"), now)
    authors, next_cursor = page_of(await store.feed_authors(db, me, now, data.limit + 1, after),
                                   data.limit, _feed_position)
    stories = await store.active_of(db, [a.author_id for a in authors], me, now)
    by_author: dict[uuid.UUID, list[StoryOut]] = {}
    for out in await story_outs(db, stories, me, now):
        by_author.setdefault(out.author.id, []).append(out)
    groups = [FeedGroup(author=by_author[a.author_id][0].author, has_unseen=a.has_unseen,
                        latest_at=a.latest_at, stories=by_author[a.author_id])
              for a in authors if a.author_id in by_author]
    return FeedPage(authors=groups, next_cursor=next_cursor)
