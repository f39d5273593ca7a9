"""Inputs and outputs of the engagement commands (handlers/engagement.py)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from handlers.commands import Input
from handlers.item_schemas import Visibility
from handlers.pagination import PageInput
from storage.views.items import AuthorOut, ItemOut

ReactionKind = Literal["like", "love", "haha", "wow", "sad", "angry"]


class ItemIdInput(Input):
    item_id: uuid.UUID


class ReactInput(Input):
    item_id: uuid.UUID
    kind: ReactionKind


class ReactionsInput(PageInput):
    item_id: uuid.UUID
    kind: ReactionKind | None = Field(default=None, description="only this kind")


class ShareInput(Input):
    item_id: uuid.UUID
    visibility: Visibility = Field(
        default="public", description="who sees the share (it also needs seeing the original)")


class ReactionsOut(BaseModel):
    """An item's reaction counters after your change, and your reaction."""

    item_id: uuid.UUID
    reaction_count: int
    reactions: dict[str, int] = Field(description="count per kind; kinds at zero are absent")
    my_reaction: ReactionKind | None
    version: int | None = Field(
        description="the live version of these counts (null when nothing changed); an "
                    "item.updated with a higher version is newer")


class ReactorOut(BaseModel):
    user: AuthorOut
    kind: ReactionKind
    created_at: datetime


class ReactorPage(BaseModel):
    reactions: list[ReactorOut]
    next_cursor: str | None


class ShareOut(BaseModel):
    share: ItemOut = Field(description="your share (kind share; shared_item embeds the original)")
    share_count: int = Field(description="the original's share_count")
    created: bool = Field(description="false when you had already shared it")


class UnsharedOut(BaseModel):
    item_id: uuid.UUID = Field(description="the original item")
    shared: Literal[False] = False
    removed: bool = Field(description="false when you had no share of it")
    share_count: int


class SaveOut(BaseModel):
    item_id: uuid.UUID
    saved: bool
    saved_at: datetime | None


class SubscribedOut(BaseModel):
    """The item's live counters when the subscription started; item.updated events follow."""

    item_id: uuid.UUID
    subscriptions: int = Field(description="how many items this connection is subscribed to")
    reaction_count: int
    reactions: dict[str, int]
    share_count: int
    reply_count: int
    quote_count: int


class UnsubscribedOut(BaseModel):
    item_id: uuid.UUID
    subscriptions: int
