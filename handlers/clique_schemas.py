"""Input and output schemas of the clique commands, and the value-object-to-output mapping."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, model_validator

from handlers.account_schemas import AvatarUrl, check_visible_name
from handlers.commands import Input
from handlers.pagination import PageInput
from storage.cliques import Ban, CliqueView, Member, Request
from storage.users import UserBrief

# Fixed limits (docs/cliques.md, docs/limits.md).
NAME_MAX = 80
DESCRIPTION_MAX = 2000
BAN_REASON_MAX = 500
SEARCH_MAX = 80

Role = Literal["owner", "admin", "moderator", "member"]
Name = Annotated[str, Field(min_length=1, max_length=NAME_MAX), AfterValidator(check_visible_name)]
Description = Annotated[str, Field(max_length=DESCRIPTION_MAX)]


class CreateInput(Input):
    name: Name
    description: Description | None = None
    is_private: bool = Field(description="private: posts and members are for members only; "
                                         "joining needs approval or an invite")
    avatar_url: AvatarUrl | None = None
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=64,
        description="a retry with the same key answers the clique the first create made")


class CliqueIdInput(Input):
    clique_id: uuid.UUID


class UpdateInput(Input):
    clique_id: uuid.UUID
    name: Name | None = None
    description: Description | None = Field(default=None, description="null removes it")
    is_private: bool | None = None
    avatar_url: AvatarUrl | None = Field(default=None, description="null removes it")

    @model_validator(mode="after")
    def _something(self) -> UpdateInput:
        if not self.model_fields_set - {"clique_id"}:
            raise ValueError("give name, description, is_private or avatar_url")
        for field in ("name", "is_private"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        return self


class SearchInput(PageInput):
    q: str = Field(min_length=1, max_length=SEARCH_MAX, description="part of the name, any case")


class UserInput(Input):
    clique_id: uuid.UUID
    user_id: uuid.UUID


class SetRoleInput(UserInput):
    role: Literal["admin", "moderator", "member"] = Field(
        description="the owner sets any of these; an admin sets moderator or member")


class BanInput(UserInput):
    reason: str | None = Field(default=None, max_length=BAN_REASON_MAX)


class ItemInput(Input):
    clique_id: uuid.UUID
    item_id: uuid.UUID


class CliquePageInput(PageInput):
    clique_id: uuid.UUID


class MembersInput(CliquePageInput):
    role: Role | None = Field(default=None, description="only members with this role")


class CliqueViewerOut(BaseModel):
    """Where the caller stands with the clique."""

    role: Role | None = Field(description="null when not a member")
    following: bool
    requested: bool = Field(description="a join request of yours is pending")
    invited: bool = Field(description="an invite to you is pending")
    banned: bool


class CliqueOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    is_private: bool
    avatar_url: str | None
    owner_id: uuid.UUID | None
    member_count: int
    follower_count: int
    created_at: datetime
    updated_at: datetime
    viewer: CliqueViewerOut


class CliquePage(BaseModel):
    cliques: list[CliqueOut]
    next_cursor: str | None


class JoinOut(BaseModel):
    clique_id: uuid.UUID
    status: Literal["member", "requested"] = Field(
        description="member: you are in; requested: a moderator must approve")


class CliqueUserOut(BaseModel):
    id: uuid.UUID
    username: str
    display_name: str
    avatar_url: str | None


class CliqueMemberOut(BaseModel):
    user: CliqueUserOut
    role: Role
    joined_at: datetime


class MemberPage(BaseModel):
    members: list[CliqueMemberOut]
    next_cursor: str | None


class RequestOut(BaseModel):
    user: CliqueUserOut
    requested_at: datetime


class RequestPage(BaseModel):
    requests: list[RequestOut]
    next_cursor: str | None


class InviteOut(BaseModel):
    clique_id: uuid.UUID
    user_id: uuid.UUID
    invited_by: uuid.UUID | None
    invited_at: datetime


class MyInviteOut(BaseModel):
    clique: CliqueOut
    invited_by: CliqueUserOut | None = Field(description="null when that account is gone")
    invited_at: datetime


class InvitePage(BaseModel):
    invites: list[MyInviteOut]
    next_cursor: str | None


class BanOut(BaseModel):
    user: CliqueUserOut
    banned_by: uuid.UUID | None
    reason: str | None
    banned_at: datetime


class BanPage(BaseModel):
    bans: list[BanOut]
    next_cursor: str | None


def user_out(user: UserBrief) -> CliqueUserOut:
    return CliqueUserOut(id=user.id, username=user.username, display_name=user.display_name,
                   avatar_url=user.avatar_url)


def clique_out(found: CliqueView) -> CliqueOut:
    c, v = found.clique, found.viewer
    return CliqueOut(
        id=c.id, name=c.name, description=c.description, is_private=c.is_private,
        avatar_url=c.avatar_url, owner_id=c.owner_id, member_count=c.member_count,
        follower_count=c.follower_count, created_at=c.created_at, updated_at=c.updated_at,
        viewer=CliqueViewerOut.model_validate({"role": v.role, "following": v.following,
                                         "requested": v.requested, "invited": v.invited,
                                         "banned": v.banned}),
    )


def member_out(found: Member) -> CliqueMemberOut:
    return CliqueMemberOut.model_validate({"user": user_out(found.user), "role": found.role,
                                     "joined_at": found.joined_at})


def request_out(found: Request) -> RequestOut:
    return RequestOut(user=user_out(found.user), requested_at=found.requested_at)


def ban_out(found: Ban) -> BanOut:
    return BanOut(user=user_out(found.user), banned_by=found.banned_by, reason=found.reason,
                  banned_at=found.banned_at)
