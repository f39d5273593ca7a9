"""Input schemas of the item commands and their pages (ItemOut itself is storage.views.items)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from handlers.commands import Input
from handlers.pagination import PageInput
from storage.views.items import ItemOut

Visibility = Literal["public", "followers", "friends", "private"]
QuotePolicy = Literal["public", "followers", "nobody"]
CreatableKind = Literal["post", "notice", "comment", "reply"]



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

