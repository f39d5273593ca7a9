"""Wire models of accounts: sign-up, login, tokens, profiles, email, phone and password."""

from __future__ import annotations

import re
import unicodedata
import uuid
from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    EmailStr,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from handlers.commands import Input
from handlers.context import Principal
from handlers.network_schemas import RelationshipOut
from handlers.scopes import Scope, covers
from storage.users import User

USERNAME_RE = re.compile(r"^[a-z0-9_]{3,30}$")


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _check_username(value: str) -> str:
    # fullmatch: with match, "$" also matches before a trailing newline ("abc\n").
    if not USERNAME_RE.fullmatch(value):
        raise ValueError("must be 3-30 characters of a-z, 0-9 and _")
    return value


def check_visible_name(value: str) -> str:
    """A stripped, non-blank name without control or invisible formatting characters."""
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    # Zero-width (non-)joiners are allowed: emoji like 👩‍💻 and Persian or Indic names need them.
    if any(unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\u200c\u200d" for ch in value):
        raise ValueError("must not contain control characters")
    return value


def _check_no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL, so a lookup with one would fail as an internal error.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _check_text(value: str) -> str:
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in value):
        raise ValueError("must not contain control characters")
    return value


Username = Annotated[str, BeforeValidator(_lower), Field(max_length=30), AfterValidator(_check_username)]
Email = Annotated[EmailStr, Field(max_length=254)]
Password = Annotated[str, Field(min_length=8, max_length=256)]
DisplayName = Annotated[str, Field(max_length=50), AfterValidator(check_visible_name)]
Bio = Annotated[str, Field(max_length=300), AfterValidator(_check_text)]
# A host must follow the scheme; no whitespace or control characters (PostgreSQL rejects NUL).
AvatarUrl = Annotated[str, Field(max_length=500,
                                 pattern=r"^https?://[^\s/?#\x00-\x1f\x7f][^\s\x00-\x1f\x7f]*$")]
LookupName = Annotated[str, AfterValidator(_check_no_nul)]
OpaqueToken = Annotated[str, Field(min_length=10, max_length=200)]


class PublicProfile(BaseModel):
    """What anyone may see of a user."""

    id: uuid.UUID
    username: str
    display_name: str
    bio: str | None
    avatar_url: str | None
    created_at: datetime
    is_private: bool = Field(description="follows need approval; lists only for followers and friends")
    follower_count: int
    following_count: int
    friend_count: int

    @classmethod
    def of(cls, user: User) -> PublicProfile:
        return cls(id=user.id, username=user.username, display_name=user.display_name,
                   bio=user.bio, avatar_url=user.avatar_url, created_at=user.created_at,
                   is_private=user.is_private, follower_count=user.follower_count,
                   following_count=user.following_count, friend_count=user.friend_count)


class UserProfile(PublicProfile):
    """Another user's profile as the caller sees it."""

    relationship: RelationshipOut | None = Field(description="null on your own profile")


def released_email(user: User, scopes: frozenset[str] | set[str]) -> str | None:
    """The address a third-party app may see: with the `email` scope, and only verified.

    An unverified address is withheld: an app could take it as proof the person owns it.
    The id_token, /oauth/userinfo and account.get all decide with this one rule.
    """
    if covers(scopes, Scope.EMAIL) and user.email and user.email_verified_at is not None:
        return user.email
    return None


class OwnProfile(PublicProfile):
    """What a user sees of their own account (a third-party app sees less: `of`)."""

    email: str | None = Field(description=(
        "the address you log in and reset with; an app's token sees it only with the "
        "email scope and once verified"))
    email_verified: bool | None = Field(description="null when the email is withheld from an app")
    pending_email: str | None = Field(
        description="an address you asked to change to (account.email.change); it replaces "
                    "email once the link mailed to it is confirmed; never shown to an app")
    pending_email_expires_at: datetime | None = Field(
        description="when the link mailed to pending_email stops working")
    phone: str | None = Field(description="never shown to an app")
    phone_verified: bool | None = Field(description="null for an app's token")
    role: str
    analytics_opt_out: bool = Field(description=(
        "you stopped analytics tracking: client events are ignored, and what you do is "
        "counted for others' insights without naming you (account.set_analytics_opt_out)"))

    @classmethod
    def of(cls, user: User, viewer: Principal | None = None) -> OwnProfile:
        """The profile as `viewer` may see it: all of it for the person's own (first-party)
        token; for an app's token, no pending email and no phone (account-security data,
        behind the never-grantable `account` scope) and the email only as released_email."""
        profile = cls(
            **PublicProfile.of(user).model_dump(),
            email=user.email, email_verified=user.email_verified_at is not None,
            pending_email=user.pending_email,
            pending_email_expires_at=user.pending_email_expires_at,
            phone=user.phone, phone_verified=user.phone_verified_at is not None, role=user.role,
            analytics_opt_out=user.analytics_opt_out,
        )
        if viewer is None or viewer.client_id is None:
            return profile
        email = released_email(user, viewer.scopes)
        return profile.model_copy(update={
            "email": email, "email_verified": True if email else None,
            "pending_email": None, "pending_email_expires_at": None,
            "phone": None, "phone_verified": None})


class Accepted(BaseModel):
    """The request is taken; what it started happens later (a mail, a code)."""

    accepted: bool = True


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    expires_in: int = Field(description="seconds until the access token expires")


class AuthResult(TokenPair):
    user: OwnProfile


class UpdateProfileInput(Input):
    username: Username | None = None
    email: object = Field(default=None, description="refused: the email changes with "
                          "account.email.change (POST /v1/users/me/email), which needs the "
                          "password and a confirmed link")
    display_name: DisplayName | None = None
    bio: Bio | None = None
    avatar_url: AvatarUrl | None = None
    is_private: bool | None = Field(default=None, description="false approves pending follow requests")

    @field_validator("email", mode="before")
    @classmethod
    def _email_moved(cls, value: object) -> object:
        # A stolen access token must not be enough to move the account to another address.
        raise PydanticCustomError(
            "use_email_change", "the email changes with account.email.change "
            "(POST /v1/users/me/email), which needs your current password")

    @model_validator(mode="after")
    def _not_empty(self) -> UpdateProfileInput:
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        for required in ("username", "display_name", "is_private"):
            if required in self.model_fields_set and getattr(self, required) is None:
                raise ValueError(f"{required} cannot be removed")
        return self


class DeleteAccountInput(Input):
    password: str = Field(min_length=1, max_length=256)


class AnalyticsOptOutInput(Input):
    opt_out: bool = Field(description="true stops analytics tracking of you; false resumes it")


class ChangePasswordInput(Input):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: Password


class UserIdInput(Input):
    user_id: uuid.UUID


class UsernameInput(Input):
    username: LookupName = Field(min_length=1, max_length=30)


class PhoneInput(Input):
    phone: str = Field(min_length=4, max_length=20, description="E.164, e.g. +14155550123")


class PhoneCodeInput(Input):
    code: str = Field(pattern=r"^[0-9]{6}$")


class SignupInput(Input):
    username: Username
    email: Email
    password: Password
    display_name: DisplayName | None = None


class LoginCredentials(Input):
    login: LookupName = Field(min_length=1, max_length=254, description="username or email")
    password: str = Field(min_length=1, max_length=256)


class RefreshInput(Input):
    refresh_token: OpaqueToken


class TokenInput(Input):
    token: OpaqueToken


class PasswordResetInput(Input):
    email: Email


class PasswordResetConfirmInput(Input):
    token: OpaqueToken
    new_password: Password


class ChangeEmailInput(Input):
    email: Email = Field(description="the new address; it must confirm a mailed link")
    current_password: str = Field(min_length=1, max_length=256)
