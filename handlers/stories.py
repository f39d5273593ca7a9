"""Stories: 24-hour items with one media and an audience; reactions and DM replies.

The rules (docs/stories.md has the full list):
- A story is an item of kind 'story': audience followers, friends or close_friends
  (hs_can_see decides, blocks included), exactly one of the author's own uploads, an
  optional caption, allow_replies and allow_comments. It expires story_lifetime_s (24 h)
  after it is posted; every query compares expires_at with ctx.services.clock().
- Others read a story while it is active, and after that only while it is in one of
  the author's highlights; the author reads their own at any time (story.list_archived).
- Viewing, reacting and replying need an active story within the audience; anything
  else answers not_found, so an invisible story's existence is not revealed.
- story.react goes through the content engine's one reaction path
  (handlers/engagement.py: set_reaction), which publishes item.updated.
- story.reply sends a DM to the author through the messaging path (message.send's use
  case), carrying the story's id as the message's story_id; its client_id is required,
  as message.send's, so a retried reply never makes a second message.
The tray (story.list_feed) is handlers/story_tray.py, views handlers/story_views.py, highlights
handlers/highlights.py.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from handlers import activities, conversations, engagement, messages
from handlers.commands import Empty, command
from handlers.context import Context
from handlers.conversation_schemas import OpenDirectInput
from handlers.errors import CommandError, invalid
from handlers.idempotency import item_retry
from handlers.message_schemas import MessageOut, SendInput
from handlers.pagination import PageInput, Position, decode_cursor, page_of
from handlers.rates import Rate, charge
from handlers.scopes import Scope
from handlers.story_schemas import (
    CreateInput,
    ReactInput,
    ReplyInput,
    StoryIdInput,
    StoryList,
    StoryOut,
    StoryPage,
    StoryReactionOut,
    story_outs,
)
from storage import conversations as conversation_store
from storage import items as item_store
from storage import media as media_store
from storage import stories as store
from storage.stories import NewStory, Story


def _not_found() -> CommandError:
    return CommandError("not_found", "no such story")


async def _out(ctx: Context, story: Story) -> StoryOut:
    [out] = await story_outs(ctx.services.db, [story], ctx.user.user_id, ctx.services.clock())
    return out


async def active_story(ctx: Context, story_id: uuid.UUID) -> Story:
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


async def own_story(ctx: Context, story_id: uuid.UUID) -> Story:
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
    found = await item_store.created_with_key(ctx.services.db, ctx.user.user_id, key)
    if found is None:
        return None
    if found[1] != "story":
        raise CommandError("conflict", "this idempotency_key was used for another item",
                           {"reason": "idempotency_key_reused"})
    return await _out(ctx, await _readable(ctx, found[0]))


@command("story.create", input=CreateInput, rest=("POST", "/stories"), scope=Scope.WRITE_CONTENT,
         status=201, output=StoryOut,
         rate=Rate("story_create"), is_retry=item_retry, activity=activities.STORY_POSTED)
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
        if key is None or await item_store.created_with_key(conn, me, key) is None:
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


@command("story.list_mine", rest=("GET", "/stories/mine"), scope=Scope.READ_CONTENT, output=StoryList,
         rate=Rate("reads"))
async def mine(ctx: Context, data: Empty) -> StoryList:
    """Your active stories, oldest first (at most 50, the active limit), with view counts."""
    me, now = ctx.user.user_id, ctx.services.clock()
    stories = await store.active_of(ctx.services.db, [me], me, now)
    return StoryList(stories=await story_outs(ctx.services.db, stories, me, now))


@command("story.list_archived", input=PageInput, rest=("GET", "/stories/archive"),
         scope=Scope.READ_CONTENT, output=StoryPage,
         rate=Rate("reads"))
async def archive(ctx: Context, data: PageInput) -> StoryPage:
    """Your expired stories, most recently expired first; only you see your archive."""
    me, now = ctx.user.user_id, ctx.services.clock()
    after = decode_cursor(data.cursor, "story.list_archived")
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
    story = await own_story(ctx, data.story_id)
    async with ctx.services.db.transaction() as conn:
        await store.tombstone(conn, story.id, ctx.user.user_id, ctx.services.clock())


# -- reactions and replies -------------------------------------------------------------------


async def _react(ctx: Context, story_id: uuid.UUID, kind: str | None) -> StoryReactionOut:
    story = await active_story(ctx, story_id)
    _not_self(ctx, story, "react to")
    result = await engagement.set_reaction(ctx, story.id, story.author.id, kind,
                                           {"item_kind": "story", "story_id": str(story.id)})
    return StoryReactionOut.model_validate({"story_id": story.id, "my_reaction": kind,
                                            "changed": result.changed})


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
    story = await active_story(ctx, data.story_id)
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
        conversation_id=conversation_id, body=data.body, client_id=data.client_id),
        story_id=story.id)
    # The notifications worker tells the author (story_reply) once the message is stored.
    return message
