"""Wire models of presence: command inputs and outputs, with the rules their fields follow."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field

from channels.events import PresenceChanged
from handlers.commands import Input

# Per call; the total a socket may watch is limits.presence_subscribe_max.
USER_IDS_PER_CALL = 200


def _split_commas(value: Any) -> Any:
    # REST passes the list in one query parameter: ?user_ids=<id>,<id>
    return value.split(",") if isinstance(value, str) else value


def _unique(values: list[uuid.UUID]) -> list[uuid.UUID]:
    if len(set(values)) != len(values):
        raise ValueError("user ids must be unique")
    return values


UserIds = Annotated[
    list[uuid.UUID], BeforeValidator(_split_commas),
    Field(min_length=1, max_length=USER_IDS_PER_CALL,
          description=f"1 to {USER_IDS_PER_CALL} distinct user ids (comma-separated over REST)"),
    AfterValidator(_unique),
]


class ConversationInput(Input):
    conversation_id: uuid.UUID


class TypingOut(BaseModel):
    conversation_id: uuid.UUID
    active: bool
    relayed: bool = Field(description="false when the group is over the typing relay limit")
    expires_in_s: float | None = Field(description="when the server ends it unless refreshed")


class UserIdsInput(Input):
    user_ids: UserIds


class PresenceList(BaseModel):
    presence: list[PresenceChanged]


class PresenceWatch(BaseModel):
    presence: list[PresenceChanged]
    watching: int = Field(description="how many users this socket now watches")


class Watching(BaseModel):
    watching: int
