"""Wire models of messages: command inputs and outputs, with the rules their fields follow."""

from __future__ import annotations

import unicodedata
import uuid
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, model_validator

from handlers.commands import Input


def _check_emoji(value: str) -> str:
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError("must not contain spaces or control characters")
    return value


Emoji = Annotated[str, Field(min_length=1, max_length=16), AfterValidator(_check_emoji)]


class SendInput(Input):
    conversation_id: uuid.UUID
    body: str | None = Field(default=None, max_length=4000)
    media_ids: list[uuid.UUID] = Field(default_factory=list, max_length=10)
    reply_to: uuid.UUID | None = None
    client_id: str = Field(min_length=1, max_length=64,
                           description="your id for this send; a retry with it is idempotent")

    @model_validator(mode="after")
    def _not_empty(self) -> SendInput:
        if (self.body is None or not self.body.strip()) and not self.media_ids:
            raise ValueError("a message needs a body or media")
        return self


class MessageOut(BaseModel):
    id: uuid.UUID
    conversation_id: uuid.UUID
    seq: int
    sender_id: uuid.UUID
    client_id: str
    body: str | None
    media: list[Any]
    reply_to: uuid.UUID | None
    created_at: str
    edited_at: str | None
    deleted: bool
    reactions: dict[str, int]
    story_id: uuid.UUID | None = Field(default=None, description="the story this answers")


class HistoryInput(Input):
    conversation_id: uuid.UUID
    before_seq: int | None = Field(default=None, ge=1)
    after_seq: int | None = Field(default=None, ge=0)
    limit: int = Field(default=50, ge=1, le=100)

    @model_validator(mode="after")
    def _one_direction(self) -> HistoryInput:
        if self.before_seq is not None and self.after_seq is not None:
            raise ValueError("give before_seq or after_seq, not both")
        return self


class HistoryPage(BaseModel):
    messages: list[MessageOut]
    has_more: bool


class EditInput(Input):
    message_id: uuid.UUID
    body: str = Field(min_length=1, max_length=4000)

    @model_validator(mode="after")
    def _not_blank(self) -> EditInput:
        if not self.body.strip():
            raise ValueError("the body must not be blank")
        return self


class MessageIdInput(Input):
    message_id: uuid.UUID


class ReactInput(Input):
    message_id: uuid.UUID
    emoji: Emoji


class ReceiptInput(Input):
    conversation_id: uuid.UUID
    seq: int = Field(ge=1)


class ReceiptOut(BaseModel):
    conversation_id: uuid.UUID
    read_seq: int
    delivered_seq: int
    unread: int


class SyncInput(Input):
    cursor: str | None = Field(default=None, pattern=r"^[0-9]{1,19}$")
    limit: int = Field(default=100, ge=1, le=500)


class SyncEvent(BaseModel):
    event: str
    data: dict[str, Any]


class SyncPageOut(BaseModel):
    events: list[SyncEvent]
    cursor: str
    has_more: bool
    gap: bool


class MessageReactionOut(BaseModel):
    message_id: uuid.UUID
    reactions: dict[str, int]
    changed: bool
