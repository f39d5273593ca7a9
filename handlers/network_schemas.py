"""Input and output schemas of the social graph commands (docs/networks.md)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field, model_validator

from handlers.commands import Input
from handlers.pagination import PAGE_DEFAULT, PAGE_MAX, PageInput
from storage.networks import GraphUser, MutedUser, Relationship, Suggestion

# The longest mute given as a duration: a year and a day (an `until` may be any future time).
MUTE_DURATION_MAX_S = 366 * 24 * 3600


class UserRef(Input):
    user_id: uuid.UUID


class UserListInput(PageInput):
    user_id: uuid.UUID


class MuteInput(Input):
    user_id: uuid.UUID
    until: AwareDatetime | None = Field(default=None, description="a future time with a zone")
    duration_s: int | None = Field(default=None, ge=1, le=MUTE_DURATION_MAX_S,
                                   description="mute for this many seconds from now")

    @model_validator(mode="after")
    def _one_end(self) -> MuteInput:
        if self.until is not None and self.duration_s is not None:
            raise ValueError("give until or duration_s, not both")
        return self


class SuggestionsInput(Input):
    limit: int = Field(default=PAGE_DEFAULT, ge=1, le=PAGE_MAX)


class FollowOut(BaseModel):
    user_id: uuid.UUID
    status: Literal["following", "requested"] = Field(
        description="following, or requested when the account is private and must approve")


class FriendOut(BaseModel):
    user_id: uuid.UUID
    status: Literal["friends", "requested"]


class GraphUserOut(BaseModel):
    """A compact user in a list; since is when the listed relation began."""

    id: uuid.UUID
    username: str
    display_name: str
    avatar_url: str | None
    since: datetime

    @classmethod
    def of(cls, user: GraphUser) -> GraphUserOut:
        return cls(id=user.id, username=user.username, display_name=user.display_name,
                   avatar_url=user.avatar_url, since=user.since)


class UserPage(BaseModel):
    users: list[GraphUserOut]
    next_cursor: str | None


class MutedUserOut(GraphUserOut):
    until: datetime | None = Field(description="when the mute ends; null for no end")

    @classmethod
    def of_mute(cls, user: MutedUser) -> MutedUserOut:
        return cls(**GraphUserOut.of(user).model_dump(), until=user.until)


class MutePage(BaseModel):
    users: list[MutedUserOut]
    next_cursor: str | None


class UserMuteOut(BaseModel):
    user_id: uuid.UUID
    muted: bool
    until: datetime | None


class SuggestionOut(BaseModel):
    id: uuid.UUID
    username: str
    display_name: str
    avatar_url: str | None
    mutual_count: int = Field(description="your follows and friends who follow or befriend them")

    @classmethod
    def of(cls, s: Suggestion) -> SuggestionOut:
        return cls(id=s.id, username=s.username, display_name=s.display_name,
                   avatar_url=s.avatar_url, mutual_count=s.mutual_count)


class SuggestionList(BaseModel):
    users: list[SuggestionOut]


class RelationshipOut(BaseModel):
    """How the viewer stands with a user; blocked tells only whether the viewer blocked them."""

    following: bool
    followed_by: bool
    follow_requested: bool = Field(description="you asked to follow them; not yet approved")
    follow_request_received: bool
    friends: bool
    friend_request_sent: bool
    friend_request_received: bool
    blocked: bool
    muted: bool
    close_friend: bool = Field(description="they are on your close-friends list")

    @classmethod
    def of(cls, r: Relationship) -> RelationshipOut:
        return cls(following=r.following, followed_by=r.followed_by,
                   follow_requested=r.follow_requested,
                   follow_request_received=r.follow_request_received, friends=r.friends,
                   friend_request_sent=r.friend_request_sent,
                   friend_request_received=r.friend_request_received, blocked=r.blocked,
                   muted=r.muted, close_friend=r.close_friend)
