"""Wire shapes of stories and highlights, and the builders that make them from storage rows."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from handlers.commands import Input
from handlers.pagination import PageInput
from storage import stories as store
from storage.db import Database
from storage.media import Rendition
from storage.stories import Story
from storage.story_highlights import HighlightView
from storage.users import UserBrief
from storage.views.media import MediaVariant, content_url

Audience = Literal["followers", "friends", "close_friends"]
# The item reaction kinds (items.item_reactions); a story takes one per viewer.
ReactionKind = Literal["like", "love", "haha", "wow", "sad", "angry"]
# Fixed field lengths (docs/stories.md, docs/limits.md).
CAPTION_MAX = 500
REPLY_MAX = 4000
TITLE_MAX = 50
IDS_MAX = 100


class StoryUserOut(BaseModel):
    id: uuid.UUID
    username: str
    display_name: str
    avatar_url: str | None

    @classmethod
    def of(cls, user: UserBrief) -> StoryUserOut:
        return cls(id=user.id, username=user.username, display_name=user.display_name,
                   avatar_url=user.avatar_url)


class StoryMediaOut(BaseModel):
    id: uuid.UUID
    kind: Literal["image", "video"]
    content_type: str
    status: str = Field(description="processing, ready or failed (media.get tells more)")
    width: int | None
    height: int | None
    duration_ms: int | None
    blurhash: str | None
    url: str
    variants: dict[str, MediaVariant]


class StoryOut(BaseModel):
    id: uuid.UUID
    author: StoryUserOut
    caption: str | None
    audience: Audience
    allow_replies: bool
    allow_comments: bool
    media: StoryMediaOut | None = Field(
        description="null once the retention purge removed an expired story's media")
    created_at: datetime
    expires_at: datetime
    expired: bool
    seen: bool = Field(description="you viewed it (always true for your own)")
    my_reaction: ReactionKind | None
    comment_count: int
    reaction_count: int
    view_count: int | None = Field(description="the author's eyes only: null for others")
    reaction_counts: dict[str, int] | None = Field(description="the author's eyes only")


class CreateInput(Input):
    media_id: uuid.UUID
    caption: str | None = Field(default=None, max_length=CAPTION_MAX)
    audience: Audience = "followers"
    allow_replies: bool = True
    allow_comments: bool = False
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=64)


class StoryIdInput(Input):
    story_id: uuid.UUID


class StoryList(BaseModel):
    stories: list[StoryOut]


class StoryPage(BaseModel):
    stories: list[StoryOut]
    next_cursor: str | None


class FeedGroup(BaseModel):
    author: StoryUserOut
    has_unseen: bool
    latest_at: datetime
    stories: list[StoryOut] = Field(description="oldest first")


class FeedPage(BaseModel):
    authors: list[FeedGroup]
    next_cursor: str | None


class StoryViewOut(BaseModel):
    story_id: uuid.UUID
    counted: bool = Field(description="this call recorded your first view")


class ViewersInput(PageInput):
    story_id: uuid.UUID


class StoryViewerOut(BaseModel):
    user: StoryUserOut
    viewed_at: datetime
    reaction: ReactionKind | None


class ViewersPage(BaseModel):
    story_id: uuid.UUID
    view_count: int
    viewers: list[StoryViewerOut]
    next_cursor: str | None


class ReactInput(Input):
    story_id: uuid.UUID
    kind: ReactionKind


class StoryReactionOut(BaseModel):
    story_id: uuid.UUID
    my_reaction: ReactionKind | None
    changed: bool


class ReplyInput(Input):
    story_id: uuid.UUID
    body: str = Field(min_length=1, max_length=REPLY_MAX)
    # Required, as message.send's: a retry without it could only make a second message.
    client_id: str = Field(min_length=1, max_length=64,
                           description="your id for this send (as message.send's); a retry "
                                       "with it answers the same message")

    @model_validator(mode="after")
    def _not_blank(self) -> ReplyInput:
        if not self.body.strip():
            raise ValueError("the body must not be blank")
        return self


class HighlightCreateInput(Input):
    title: str = Field(min_length=1, max_length=TITLE_MAX)
    story_ids: list[uuid.UUID] = Field(min_length=1, max_length=IDS_MAX)
    cover_story_id: uuid.UUID | None = None


class HighlightUpdateInput(Input):
    highlight_id: uuid.UUID
    title: str | None = Field(default=None, min_length=1, max_length=TITLE_MAX)
    story_ids: list[uuid.UUID] | None = Field(
        default=None, min_length=1, max_length=IDS_MAX,
        description="the whole new list, in order (not with add/remove)")
    add_story_ids: list[uuid.UUID] = Field(default_factory=list, max_length=IDS_MAX,
                                           description="appended at the end")
    remove_story_ids: list[uuid.UUID] = Field(default_factory=list, max_length=IDS_MAX)
    cover_story_id: uuid.UUID | None = Field(default=None,
                                             description="null: the first story is the cover")

    @model_validator(mode="after")
    def _one_way(self) -> HighlightUpdateInput:
        if self.story_ids is not None and (self.add_story_ids or self.remove_story_ids):
            raise ValueError("give story_ids, or add_story_ids/remove_story_ids, not both")
        return self


class HighlightIdInput(Input):
    highlight_id: uuid.UUID


class HighlightListInput(PageInput):
    user_id: uuid.UUID


class HighlightSummary(BaseModel):
    id: uuid.UUID
    owner_id: uuid.UUID
    title: str
    cover: StoryOut | None = Field(description="the chosen cover, or the first story you may see")
    story_count: int = Field(description="the stories you may see")
    created_at: datetime
    updated_at: datetime


class HighlightOut(HighlightSummary):
    stories: list[StoryOut] = Field(description="the stories you may see, in the owner's order")


class HighlightPage(BaseModel):
    highlights: list[HighlightSummary]
    next_cursor: str | None


def _variant(media_id: uuid.UUID, r: Rendition) -> MediaVariant:
    return MediaVariant(url=f"{content_url(media_id)}?variant={r.variant}",
                        content_type=r.content_type, width=r.width, height=r.height,
                        size_bytes=r.size_bytes)


async def story_outs(db: Database, stories: list[Story], viewer: uuid.UUID,
                     now: datetime) -> list[StoryOut]:
    """Wire forms of stories as the viewer sees them, with one renditions query for all."""
    media_ids = [s.media.id for s in stories if s.media is not None]
    made = await store.renditions_of(db, media_ids) if media_ids else {}
    out: list[StoryOut] = []
    for s in stories:
        mine = s.author.id == viewer
        media = None if s.media is None else StoryMediaOut(
            id=s.media.id, kind=s.media.kind,
            content_type=s.media.content_type, status=s.media.status, width=s.media.width,
            height=s.media.height, duration_ms=s.media.duration_ms, blurhash=s.media.blurhash,
            url=content_url(s.media.id),
            variants={r.variant: _variant(s.media.id, r) for r in made.get(s.media.id, [])})
        out.append(StoryOut(
            id=s.id, author=StoryUserOut.of(s.author), caption=s.caption,
            audience=s.audience,
            allow_replies=s.allow_replies, allow_comments=s.allow_comments, media=media,
            created_at=s.created_at, expires_at=s.expires_at, expired=s.expires_at <= now,
            seen=mine or s.seen,
            my_reaction=s.my_reaction,
            comment_count=s.comment_count, reaction_count=s.reaction_count,
            view_count=s.view_count if mine else None,
            reaction_counts=s.reaction_counts if mine else None))
    return out


async def highlight_outs(db: Database, views: list[HighlightView], viewer: uuid.UUID,
                         now: datetime, *, with_stories: bool) -> list[HighlightOut]:
    """Wire forms of highlights: their covers, and with_stories their visible stories too."""
    wanted = {i for v in views for i in (v.story_ids if with_stories else [v.cover_id]) if i}
    found = await store.readable_among(db, list(wanted), viewer, now)
    outs = {s.id: s for s in await story_outs(db, list(found.values()), viewer, now)}
    return [HighlightOut(
        id=v.highlight.id, owner_id=v.highlight.owner_id, title=v.highlight.title,
        cover=outs.get(v.cover_id) if v.cover_id else None, story_count=len(v.story_ids),
        created_at=v.highlight.created_at, updated_at=v.highlight.updated_at,
        stories=[outs[i] for i in v.story_ids if i in outs] if with_stories else [])
        for v in views]
