"""Stories: 24-hour items with one media and an audience; live views, reactions, DM replies.

The rules (docs/stories.md has the full list):
- A story is an item of kind 'story': audience followers, friends or close_friends
  (hs_can_see decides, blocks included), exactly one of the author's own uploads, an
  optional caption, allow_replies and allow_comments. It expires story_lifetime_s (24 h)
  after it is posted; every query compares expires_at with ctx.services.clock().
- Others read a story while it is active, and after that only while it is in one of
  the author's highlights; the author reads their own at any time (story.archive).
- Viewing, reacting and replying need an active story within the audience; anything
  else answers not_found, so an invisible story's existence is not revealed.
- story.view counts each viewer once (never the author) and tells the author live:
  `story.viewed {story_id, viewer, view_count}`.
- story.reply sends a DM to the author through the messaging path (message.send's use
  case), carrying the story's id as the message's story_id.
Highlights are in this module too (highlight.*), on storage/story_highlights.py.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from handlers import conversations, messages, notifications
from handlers.commands import Empty, command
from handlers.context import Context
from handlers.conversation_schemas import OpenDirectInput
from handlers.errors import CommandError, invalid
from handlers.messages import MessageOut, SendInput
from handlers.pagination import PageInput, Position, decode_cursor, page_of
from handlers.rates import Rate, charge
from handlers.scopes import Scope
from handlers.story_schemas import (
    CreateInput,
    FeedGroup,
    FeedPage,
    HighlightCreateInput,
    HighlightIdInput,
    HighlightListInput,
    HighlightOut,
    HighlightPage,
    HighlightSummary,
    HighlightUpdateInput,
    ReactInput,
    ReplyInput,
    StoryIdInput,
    StoryList,
    StoryOut,
    StoryPage,
    StoryReactionOut,
    StoryUserOut,
    StoryViewerOut,
    StoryViewOut,
    ViewersInput,
    ViewersPage,
    highlight_outs,
    story_outs,
)
from storage import blocks as block_store
from storage import conversations as conversation_store
from storage import media as media_store
from storage import stories as store
from storage import story_highlights as highlight_store
from storage.notifications import Kind
from storage.stories import NewStory, Story

log = logging.getLogger(__name__)

# The story tray sorts unseen authors first; shifting their sort time by this much keeps
# its cursor a plain (timestamp, id) position (handlers/pagination.py).
UNSEEN_SHIFT = timedelta(days=366 * 1000)
# As item reactions render them (handlers/engagement.py): the notification shows data.emoji.
EMOJI = {"like": "👍", "love": "❤️", "haha": "😂", "wow": "😮", "sad": "😢", "angry": "😠"}


def _not_found() -> CommandError:
    return CommandError("not_found", "no such story")


async def _out(ctx: Context, story: Story) -> StoryOut:
    [out] = await story_outs(ctx.services.db, [story], ctx.user.user_id, ctx.services.clock())
    return out


async def _active(ctx: Context, story_id: uuid.UUID) -> Story:
    """The story if it is active and the caller is in its audience; not_found otherwise."""
    story = await store.active(ctx.services.db, story_id, ctx.user.user_id, ctx.services.clock())
    if story is None:
        raise _not_found()
    return story


async def _readable(ctx: Context, story_id: uuid.UUID) -> Story:
    story = await store.readable(ctx.services.db, story_id, ctx.user.user_id,
                                 ctx.services.clock())
    if story is None:
        raise _not_found()
    return story


async def _own(ctx: Context, story_id: uuid.UUID) -> Story:
    """The caller's story: forbidden for one they may only read, not_found otherwise."""
    story = await _readable(ctx, story_id)
    if story.author.id != ctx.user.user_id:
        raise CommandError("forbidden", "only the story's author can do this",
                           {"reason": "not_author"})
    return story


def _not_self(ctx: Context, story: Story, action: str) -> None:
    if story.author.id == ctx.user.user_id:
        raise invalid("story_id", f"you cannot {action} your own story", "self")


# -- create, read, delete ------------------------------------------------------------------


async def _story_media(ctx: Context, media_id: uuid.UUID) -> None:
    owned = await media_store.owned_by(ctx.services.db, [media_id], ctx.user.user_id)
    if not owned:
        # Someone else's upload looks exactly like a missing one.
        raise invalid("media_id", "no such media among your uploads", "media_not_found")
    if owned[0].status == "failed":
        raise invalid("media_id", "this upload could not be processed", "media_failed")


async def _by_key(ctx: Context, key: str) -> StoryOut | None:
    """The story a create with this idempotency key made already, if any."""
    found = await store.by_key(ctx.services.db, ctx.user.user_id, key)
    if found is None:
        return None
    if found[1] != "story":
        raise CommandError("conflict", "this idempotency_key was used for another item",
                           {"reason": "idempotency_key_reused"})
    return await _out(ctx, await _readable(ctx, found[0]))


@command("story.create", input=CreateInput, rest=("POST", "/stories"), scope=Scope.WRITE_CONTENT,
         status=201, output=StoryOut,
         rate=Rate("story_create"))
async def create(ctx: Context, data: CreateInput) -> StoryOut:
    """Post a story (one of your uploads) for 24 hours; at most 50 active at once."""
    services, me = ctx.services, ctx.user.user_id
    settings, limits = services.settings, services.settings.limits
    if data.idempotency_key is not None and (done := await _by_key(ctx, data.idempotency_key)):
        return done
    caption = data.caption if data.caption and data.caption.strip() else None
    if caption is not None and len(caption) > limits.story_caption_chars:
        raise invalid("caption", f"at most {limits.story_caption_chars} characters",
                      "string_too_long")
    await _story_media(ctx, data.media_id)
    now = services.clock()
    key = data.idempotency_key
    story_id: uuid.UUID | None = None
    async with services.db.transaction() as conn:
        await store.lock_author(conn, me)
        # Under the lock, a concurrent create with the same key has committed or not begun.
        if key is None or await store.by_key(conn, me, key) is None:
            if await store.active_count(conn, me, now) >= limits.stories_active_max:
                raise CommandError(
                    "conflict", f"you have {limits.stories_active_max} active stories already",
                    {"reason": "too_many_active_stories", "limit": limits.stories_active_max})
            story_id = await store.insert_story(conn, NewStory(
                author_id=me, caption=caption, audience=data.audience, media_id=data.media_id,
                allow_replies=data.allow_replies, allow_comments=data.allow_comments,
                created_at=now, expires_at=now + timedelta(seconds=settings.story_lifetime_s),
                idempotency_key=key))
    if story_id is None:
        # Only a taken idempotency key leaves nothing inserted: answer the story it made.
        done = None if key is None else await _by_key(ctx, key)
        if done is None:
            raise RuntimeError("a story created with this idempotency key is missing")
        return done
    return await _out(ctx, await _readable(ctx, story_id))


@command("story.get", input=StoryIdInput, rest=("GET", "/stories/{story_id}"),
         scope=Scope.READ_CONTENT, output=StoryOut,
         rate=Rate("reads"))
async def get(ctx: Context, data: StoryIdInput) -> StoryOut:
    """A story you may see: active and in its audience, in a highlight, or your own."""
    return await _out(ctx, await _readable(ctx, data.story_id))


@command("story.mine", rest=("GET", "/stories/mine"), scope=Scope.READ_CONTENT, output=StoryList,
         rate=Rate("reads"))
async def mine(ctx: Context, data: Empty) -> StoryList:
    """Your active stories, oldest first (at most 50, the active limit), with view counts."""
    me, now = ctx.user.user_id, ctx.services.clock()
    stories = await store.active_of(ctx.services.db, [me], me, now)
    return StoryList(stories=await story_outs(ctx.services.db, stories, me, now))


@command("story.archive", input=PageInput, rest=("GET", "/stories/archive"),
         scope=Scope.READ_CONTENT, output=StoryPage,
         rate=Rate("reads"))
async def archive(ctx: Context, data: PageInput) -> StoryPage:
    """Your expired stories, most recently expired first; only you see your archive."""
    me, now = ctx.user.user_id, ctx.services.clock()
    after = decode_cursor(data.cursor, "story.archive")
    rows = await store.archive(ctx.services.db, me, now, data.limit + 1,
                               None if after is None else (after.at, after.id))
    page, next_cursor = page_of(rows, data.limit, lambda s: Position(s.expires_at, s.id))
    return StoryPage(stories=await story_outs(ctx.services.db, page, me, now),
                     next_cursor=next_cursor)


@command("story.delete", input=StoryIdInput, rest=("DELETE", "/stories/{story_id}"),
         scope=Scope.WRITE_CONTENT, status=204,
         rate=Rate("item_delete"))
async def delete(ctx: Context, data: StoryIdInput) -> None:
    """Delete your story (active or archived): gone for everyone, out of your highlights."""
    story = await _own(ctx, data.story_id)
    async with ctx.services.db.transaction() as conn:
        await store.tombstone(conn, story.id, ctx.user.user_id, ctx.services.clock())


# -- the tray --------------------------------------------------------------------------------


def _feed_position(author: store.FeedAuthor) -> Position:
    shift = UNSEEN_SHIFT if author.has_unseen else timedelta(0)
    return Position(author.latest_at + shift, author.author_id)


def _feed_after(position: Position | None,
                now: datetime) -> tuple[bool, datetime, uuid.UUID] | None:
    if position is None:
        return None
    unseen = position.at > now + UNSEEN_SHIFT / 2
    return unseen, position.at - UNSEEN_SHIFT if unseen else position.at, position.id


@command("story.feed", input=PageInput, rest=("GET", "/stories/feed"), scope=Scope.READ_CONTENT,
         output=FeedPage,
         rate=Rate("reads"))
async def feed(ctx: Context, data: PageInput) -> FeedPage:
    """Active stories of the people you follow and your friends, grouped by author.

    Authors with a story you have not viewed come first, then by their newest story;
    a page holds up to `limit` authors, each with all their stories you may see.
    """
    db, me, now = ctx.services.db, ctx.user.user_id, ctx.services.clock()
    after = _feed_after(decode_cursor(data.cursor, "story.feed"), now)
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


# -- views -----------------------------------------------------------------------------------


@command("story.view", input=StoryIdInput, rest=("POST", "/stories/{story_id}/views"),
         scope=Scope.WRITE_CONTENT, output=StoryViewOut,
         rate=Rate("story_view"))
async def view(ctx: Context, data: StoryIdInput) -> StoryViewOut:
    """Mark an active story viewed; the author is told live on your first view only."""
    services, me = ctx.services, ctx.user.user_id
    story = await _active(ctx, data.story_id)
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
            # The view is stored; the author sees it in story.viewers all the same.
            log.warning("story.viewed not published", extra={"story_id": str(story.id)})
    return StoryViewOut(story_id=story.id, counted=True)


@command("story.viewers", input=ViewersInput, rest=("GET", "/stories/{story_id}/viewers"),
         scope=Scope.READ_CONTENT, output=ViewersPage,
         rate=Rate("reads"))
async def viewers(ctx: Context, data: ViewersInput) -> ViewersPage:
    """Who viewed your story (active or archived), newest first, with their reactions."""
    story = await _own(ctx, data.story_id)
    after = decode_cursor(data.cursor, "story.viewers")
    rows = await store.viewers(ctx.services.db, story.id, data.limit + 1,
                               None if after is None else (after.at, after.id))
    page, next_cursor = page_of(rows, data.limit, lambda v: Position(v.viewed_at, v.user.id))
    return ViewersPage(
        story_id=story.id, view_count=await store.view_count(ctx.services.db, story.id),
        viewers=[StoryViewerOut(user=StoryUserOut.of(v.user), viewed_at=v.viewed_at,
                           reaction=v.reaction) for v in page],
        next_cursor=next_cursor)


# -- reactions and replies -------------------------------------------------------------------


async def _react(ctx: Context, story_id: uuid.UUID, kind: str | None) -> StoryReactionOut:
    services, me = ctx.services, ctx.user.user_id
    story = await _active(ctx, story_id)
    _not_self(ctx, story, "react to")
    async with services.db.transaction() as conn:
        changed, previous = await store.set_reaction(conn, story.id, me, kind)
    if changed and previous is None and kind is not None:
        # Keys as for any item's reactions: one notification per reactor and story, ever,
        # grouped per story ("A and 3 others reacted").
        await notifications.notify(
            services, Kind.REACTION, [story.author.id],
            source_key=f"reaction:item:{story.id}:{me}", actor_id=me,
            subject=("item", story.id), group_key=f"reaction:item:{story.id}",
            data={"emoji": EMOJI[kind], "reaction": kind, "item_id": str(story.id),
                  "item_kind": "story", "story_id": str(story.id)})
    return StoryReactionOut.model_validate({"story_id": story.id, "my_reaction": kind,
                                       "changed": changed})


@command("story.react", input=ReactInput, rest=("PUT", "/stories/{story_id}/reaction"),
         scope=Scope.WRITE_CONTENT, output=StoryReactionOut,
         rate=Rate("story_react"))
async def react(ctx: Context, data: ReactInput) -> StoryReactionOut:
    """React to an active story (one reaction per viewer; a new kind replaces yours)."""
    return await _react(ctx, data.story_id, data.kind)


@command("story.unreact", input=StoryIdInput, rest=("DELETE", "/stories/{story_id}/reaction"),
         scope=Scope.WRITE_CONTENT, output=StoryReactionOut,
         rate=Rate("story_react"))
async def unreact(ctx: Context, data: StoryIdInput) -> StoryReactionOut:
    """Take your reaction to an active story back."""
    return await _react(ctx, data.story_id, None)


@command("story.reply", input=ReplyInput, rest=("POST", "/stories/{story_id}/replies"),
         scope=Scope.WRITE_MESSAGES, status=201, output=MessageOut,
         rate=Rate("message_send"))
async def reply(ctx: Context, data: ReplyInput) -> dict[str, Any]:
    """Answer an active story with a DM to its author; the message carries the story_id."""
    services, me = ctx.services, ctx.user.user_id
    story = await _active(ctx, data.story_id)
    _not_self(ctx, story, "reply to")
    if not story.allow_replies:
        raise CommandError("forbidden", "the author turned replies off for this story",
                           {"reason": "replies_off"})
    direct = await conversation_store.find_direct(services.db, me, story.author.id)
    if direct is None:
        # Opening the DM is a conversation opened, counted as conversation.open_direct is.
        await charge(ctx, Rate("conversation_create"))
    conversation_id = direct.id if direct is not None else (
        await conversations.open_direct(ctx, OpenDirectInput(user_id=story.author.id))).id
    message = await messages.send_message(ctx, SendInput(
        conversation_id=conversation_id, body=data.body,
        client_id=data.client_id or uuid.uuid4().hex), story_id=story.id)
    # The notifications worker tells the author (story_reply) once the message is stored.
    return message


# -- highlights ------------------------------------------------------------------------------


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
