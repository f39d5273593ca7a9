"""Input and output schemas of the conversation and block commands."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, Field, model_validator

from handlers.account_schemas import AvatarUrl, check_visible_name
from handlers.commands import Input
from storage.conversations import Conversation

# Far above any configured group size; the configured limit is checked by the handler.
MAX_IDS_PER_CALL = 10_000


def _check_unique(value: list[uuid.UUID]) -> list[uuid.UUID]:
    if len(set(value)) != len(value):
        raise ValueError("must not list a user twice")
    return value


Title = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(check_visible_name)]
UserIds = Annotated[list[uuid.UUID], Field(min_length=1, max_length=MAX_IDS_PER_CALL),
                    AfterValidator(_check_unique)]


class CreateGroupInput(Input):
    title: Title
    member_ids: UserIds = Field(description="the other members; you become the owner")
    avatar_url: AvatarUrl | None = None


class OpenDirectInput(Input):
    user_id: uuid.UUID


class ConversationIdInput(Input):
    conversation_id: uuid.UUID


class ListInput(Input):
    cursor: str | None = Field(default=None, min_length=1, max_length=200,
                               description="next_cursor of the previous page")
    limit: int = Field(default=20, ge=1, le=50)


class UpdateInput(Input):
    conversation_id: uuid.UUID
    title: Title | None = None
    avatar_url: AvatarUrl | None = Field(default=None, description="null removes the avatar")

    @model_validator(mode="after")
    def _something(self) -> UpdateInput:
        if not self.model_fields_set & {"title", "avatar_url"}:
            raise ValueError("give title or avatar_url")
        if "title" in self.model_fields_set and self.title is None:
            raise ValueError("a group's title cannot be removed")
        return self


class AddMembersInput(Input):
    conversation_id: uuid.UUID
    user_ids: UserIds


class MemberInput(Input):
    conversation_id: uuid.UUID
    user_id: uuid.UUID


class SetRoleInput(Input):
    conversation_id: uuid.UUID
    user_id: uuid.UUID
    role: Literal["owner", "admin", "member"] = Field(
        description="owner hands the group over: you become an admin")


class MuteInput(Input):
    conversation_id: uuid.UUID
    until: AwareDatetime | None = Field(default=None,
                                        description="a future time with a zone; omit for no end")


class BlockInput(Input):
    user_id: uuid.UUID


class ConversationMemberOut(BaseModel):
    user_id: uuid.UUID
    role: Literal["owner", "admin", "member"]


class LastMessageOut(BaseModel):
    id: uuid.UUID
    seq: int
    sender_id: uuid.UUID
    body: str | None
    created_at: str
    deleted: bool


class ConversationSummary(BaseModel):
    """A conversation as the caller sees it; muted_until 9999-12-31T23:59:59.999999Z is no end."""

    id: uuid.UUID
    kind: Literal["direct", "group"]
    title: str | None
    avatar_url: str | None
    member_count: int
    created_at: datetime
    last_seq: int
    last_message_at: datetime | None
    last_message: LastMessageOut | None
    role: Literal["owner", "admin", "member"]
    muted: bool
    muted_until: datetime | None
    unread: int
    last_read_seq: int
    peer: uuid.UUID | None = Field(description="in a direct conversation, the other user")


class ConversationOut(ConversationSummary):
    members: list[ConversationMemberOut] = Field(
        description="the first 1,000 members, longest-standing first")


class ConversationPage(BaseModel):
    conversations: list[ConversationSummary]
    total_unread: int = Field(description="unread messages in all your conversations but muted ones")
    next_cursor: str | None


class AddMembersOut(BaseModel):
    added: list[uuid.UUID]
    conversation: ConversationOut


class ConversationMuteOut(BaseModel):
    conversation_id: uuid.UUID
    muted: bool
    muted_until: datetime | None


class BlockedOut(BaseModel):
    user_id: uuid.UUID
    blocked_at: datetime


class BlockList(BaseModel):
    blocked: list[BlockedOut]


def wire_time(value: datetime | None) -> str | None:
    """A timestamp for an event payload."""
    return None if value is None else value.isoformat()


def brief(conversation: Conversation, member_count: int) -> dict[str, Any]:
    """What a member.joined event tells the new members about the conversation."""
    return {"id": str(conversation.id), "kind": conversation.kind, "title": conversation.title,
            "avatar_url": conversation.avatar_url, "member_count": member_count,
            "created_at": wire_time(conversation.created_at)}
