"""Wire shapes of items (ItemOut) and hydrate(), which builds them for a whole page at once.

Embedded items (a quote's quoted item, a share's shared item) are hydrated one level
deep: an embedded item carries quoted_id/shared_id but its own `quoted`/`shared_item`
are null. An embedded item the viewer may not see is the placeholder
{"id": ..., "unavailable": true}; a deleted one is a full ItemOut with deleted=true and
no body or media; a detached quote (quote_detached) embeds nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from handlers.commands import Input
from handlers.media import content_url
from handlers.pagination import PageInput
from storage import items as store
from storage.db import Database
from storage.items import Item, ItemMedia, ViewerState
from storage.users import UserBrief

Visibility = Literal["public", "followers", "friends", "private"]
QuotePolicy = Literal["public", "followers", "nobody"]
CreatableKind = Literal["post", "notice", "comment", "reply"]


class AuthorOut(BaseModel):
    id: uuid.UUID
    username: str
    display_name: str
    avatar_url: str | None


class ItemMediaOut(BaseModel):
    id: uuid.UUID
    kind: str
    content_type: str
    status: str = Field(description="processing, ready or failed (media.get tells more)")
    width: int | None
    height: int | None
    url: str


class CountsOut(BaseModel):
    replies: int = Field(description="direct children, deleted ones included")
    shares: int
    quotes: int
    reactions: int
    views: int


class UnavailableOut(BaseModel):
    """An embedded item the viewer may not see: only its id."""

    id: uuid.UUID
    unavailable: Literal[True] = True


# The kind-specific fields anyone who sees an item may read in ItemOut.data. The rest of
# items.data is server state: render bookkeeping, media ids, and a stitch's or duet's
# credit, which slide.get shows only to viewers who may see the original.
PUBLIC_DATA: dict[str, frozenset[str]] = {
    "slide": frozenset({"effects", "status", "progress", "duration_ms", "width", "height",
                        "allow_duet", "allow_stitch", "reply_to_comment_id"}),
    "story": frozenset({"allow_replies"}),
}


def public_data(item: Item) -> dict[str, object]:
    """items.data as clients see it in ItemOut (see PUBLIC_DATA)."""
    keep = PUBLIC_DATA.get(item.kind, frozenset())
    return {k: v for k, v in item.data.items() if k in keep}


class ItemOut(BaseModel):
    """An item as one viewer sees it."""

    id: uuid.UUID
    kind: str
    author: AuthorOut
    parent_id: uuid.UUID | None
    root_id: uuid.UUID | None
    clique_id: uuid.UUID | None
    quoted_id: uuid.UUID | None
    shared_id: uuid.UUID | None
    body: str | None
    media: list[ItemMediaOut]
    visibility: str
    quote_policy: str
    quote_detached: bool
    allow_comments: bool
    counts: CountsOut
    reactions: dict[str, int]
    my_reaction: str | None
    saved: bool
    shared: bool = Field(description="the viewer shared this item")
    quoted: ItemOut | UnavailableOut | None = Field(
        default=None, description="the quoted item, one level deep; null when detached")
    shared_item: ItemOut | UnavailableOut | None = Field(
        default=None, description="the shared item of a share, one level deep")
    mentions: list[uuid.UUID]
    tags: list[str]
    data: dict[str, object]
    created_at: datetime
    edited_at: datetime | None
    deleted: bool
    expires_at: datetime | None


# -- inputs ------------------------------------------------------------------------------


class CreateInput(Input):
    kind: CreatableKind
    body: str | None = Field(default=None, max_length=5000,
                             description="post 5,000, notice 500, comment/reply 2,000 chars")
    media_ids: list[uuid.UUID] = Field(default_factory=list, max_length=10)
    parent_id: uuid.UUID | None = None
    quoted_id: uuid.UUID | None = None
    clique_id: uuid.UUID | None = None
    visibility: Visibility | None = Field(
        default=None, description="top-level items only (default public); children follow "
                                  "their root")
    quote_policy: QuotePolicy = "public"
    allow_comments: bool = True
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=64)


class ItemIdInput(Input):
    item_id: uuid.UUID


class EditInput(Input):
    item_id: uuid.UUID
    body: str | None = Field(default=None, max_length=5000)
    visibility: Visibility | None = None
    allow_comments: bool | None = None
    quote_policy: QuotePolicy | None = None

    @model_validator(mode="after")
    def _something(self) -> EditInput:
        if not self.model_fields_set - {"item_id"}:
            raise ValueError("give at least one of body, visibility, allow_comments, "
                             "quote_policy")
        for name in ("visibility", "allow_comments", "quote_policy"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class RepliesInput(PageInput):
    item_id: uuid.UUID


class ItemPage(BaseModel):
    items: list[ItemOut]
    next_cursor: str | None


class EditsInput(PageInput):
    item_id: uuid.UUID


class EditOut(BaseModel):
    body: str | None
    edited_at: datetime = Field(description="when this version was replaced")


class EditPage(BaseModel):
    edits: list[EditOut]
    next_cursor: str | None


# -- hydration ---------------------------------------------------------------------------


def _media_out(media: ItemMedia) -> ItemMediaOut:
    return ItemMediaOut(id=media.id, kind=media.kind, content_type=media.content_type,
                        status=media.status, width=media.width, height=media.height,
                        url=content_url(media.id))


def _author_out(author: UserBrief | None, author_id: uuid.UUID) -> AuthorOut:
    if author is None:  # the account row is gone mid-request: show the id alone
        return AuthorOut(id=author_id, username="", display_name="", avatar_url=None)
    return AuthorOut(id=author.id, username=author.username, display_name=author.display_name,
                     avatar_url=author.avatar_url)


def _out(item: Item, authors: dict[uuid.UUID, UserBrief], media: dict[uuid.UUID, list[ItemMedia]],
         states: dict[uuid.UUID, ViewerState]) -> ItemOut:
    state = states.get(item.id)
    deleted = item.deleted
    return ItemOut(
        id=item.id, kind=item.kind, author=_author_out(authors.get(item.author_id), item.author_id),
        parent_id=item.parent_id, root_id=item.root_id, clique_id=item.clique_id,
        quoted_id=item.quoted_id, shared_id=item.shared_id,
        body=None if deleted else item.body,
        media=[] if deleted else [_media_out(m) for m in media.get(item.id, [])],
        visibility=item.visibility, quote_policy=item.quote_policy,
        quote_detached=item.quote_detached, allow_comments=item.allow_comments,
        counts=CountsOut(replies=item.reply_count, shares=item.share_count,
                         quotes=item.quote_count, reactions=item.reaction_count,
                         views=item.view_count),
        reactions=dict(item.reaction_counts),
        my_reaction=state.my_reaction if state else None,
        saved=state.saved if state else False, shared=state.shared if state else False,
        mentions=state.mentions if state and not deleted else [],
        tags=state.tags if state and not deleted else [],
        data={} if deleted else public_data(item),
        created_at=item.created_at, edited_at=item.edited_at, deleted=deleted,
        expires_at=item.expires_at)


def _embedded_ids(item: Item) -> list[uuid.UUID]:
    ids = []
    if item.quoted_id is not None and not item.quote_detached and not item.deleted:
        ids.append(item.quoted_id)
    if item.shared_id is not None:
        ids.append(item.shared_id)
    return ids


async def hydrate(db: Database, viewer: uuid.UUID, items: list[Item]) -> list[ItemOut]:
    """ItemOut of each item for this viewer, in order, in at most four queries per page.

    The caller has checked that the viewer may see `items`; embedded items are checked
    here, each on its own (hs_can_see).
    """
    if not items:
        return []
    wanted = list(dict.fromkeys(e for item in items for e in _embedded_ids(item)))
    embedded = (await store.visible_among(db, viewer, wanted))[0] if wanted else {}
    every = [*items, *embedded.values()]
    ids = [i.id for i in every]
    authors = await store.authors(db, [i.author_id for i in every])
    media = await store.media_of(db, ids)
    states = await store.viewer_states(db, viewer, ids)

    def embed(item_id: uuid.UUID | None) -> ItemOut | UnavailableOut | None:
        if item_id is None:
            return None
        found = embedded.get(item_id)
        if found is not None:
            return _out(found, authors, media, states)
        # Hidden, or gone between the two reads: either way the viewer learns nothing more.
        return UnavailableOut(id=item_id)

    result = []
    for item in items:
        out = _out(item, authors, media, states)
        wanted_ids = _embedded_ids(item)
        if item.quoted_id is not None and item.quoted_id in wanted_ids:
            out.quoted = embed(item.quoted_id)
        if item.shared_id is not None:
            out.shared_item = embed(item.shared_id)
        result.append(out)
    return result
