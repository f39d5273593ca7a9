"""Items as one viewer sees them (ItemOut), and hydrate(), which builds a whole page at once.

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

from pydantic import BaseModel, Field

from storage import items as store
from storage.db import Database
from storage.items import Item, ItemMedia, ViewerState
from storage.users import UserBrief
from storage.views.media import content_url


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
