"""The scope catalogue: every scope a command can require, with what it lets a token do.

One catalogue serves first-party tokens, OAuth apps and bots. Scopes are hierarchical:
`read` covers every `read:*` scope and `write` every `write:*` scope, as in Mastodon; the
OpenID Connect scopes (`openid`, `profile`, `email`, `offline_access`) mean what the OIDC
specification says. `account` and `admin` are never grantable to a third-party app: they
guard the password, the email address, account deletion, sessions, app management and the
admin commands, which only the person themselves (a first-party token) may reach.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Scope(StrEnum):
    """A scope a command may require; the value is what tokens carry."""

    OPENID = "openid"
    PROFILE = "profile"
    EMAIL = "email"
    OFFLINE_ACCESS = "offline_access"
    READ = "read"
    WRITE = "write"
    READ_PROFILE = "read:profile"
    WRITE_PROFILE = "write:profile"
    READ_MESSAGES = "read:messages"
    WRITE_MESSAGES = "write:messages"
    READ_CONTENT = "read:content"
    WRITE_CONTENT = "write:content"
    READ_CLIQUES = "read:cliques"
    WRITE_CLIQUES = "write:cliques"
    READ_NETWORK = "read:network"
    WRITE_NETWORK = "write:network"
    READ_NOTIFICATIONS = "read:notifications"
    WRITE_NOTIFICATIONS = "write:notifications"
    READ_MEDIA = "read:media"
    WRITE_MEDIA = "write:media"
    WRITE_ANALYTICS = "write:analytics"
    ACCOUNT = "account"
    ADMIN = "admin"


@dataclass(frozen=True)
class ScopeInfo:
    """What a scope lets a token do, and whether a third-party app may be granted it."""

    description: str
    grantable: bool = True


# What a consent screen shows for each scope; GET /v1/oauth/scopes and the API documents
# list the same text.
CATALOGUE: dict[Scope, ScopeInfo] = {
    Scope.OPENID: ScopeInfo("Sign you in with your HotSpot account (an ID token with your user id)"),
    Scope.PROFILE: ScopeInfo("Your username, display name, avatar and profile URL in the ID token"),
    Scope.EMAIL: ScopeInfo("Your verified email address in the ID token"),
    Scope.OFFLINE_ACCESS: ScopeInfo("Stay signed in: a refresh token that outlives this session"),
    Scope.READ: ScopeInfo("Read everything the read:* scopes cover"),
    Scope.WRITE: ScopeInfo("Act for you everywhere the write:* scopes cover"),
    Scope.READ_PROFILE: ScopeInfo("See profiles, presence and your own profile and settings"),
    Scope.WRITE_PROFILE: ScopeInfo("Change your profile (not your email or password) and "
                                   "outreach subscriptions"),
    Scope.READ_MESSAGES: ScopeInfo("Read your conversations and messages, and sync them"),
    Scope.WRITE_MESSAGES: ScopeInfo("Send, edit and delete messages, react, type, mark read, "
                                    "manage your conversations"),
    Scope.READ_CONTENT: ScopeInfo("Read posts, notices, comments, stories, slides and feeds"),
    Scope.WRITE_CONTENT: ScopeInfo("Post, comment, react, share, save, view stories and "
                                   "slides, manage highlights"),
    Scope.READ_CLIQUES: ScopeInfo("See cliques, their members and your invites"),
    Scope.WRITE_CLIQUES: ScopeInfo("Create, join, leave and moderate cliques"),
    Scope.READ_NETWORK: ScopeInfo("See followers, following, friends, requests, mutes, "
                                  "blocks and suggestions"),
    Scope.WRITE_NETWORK: ScopeInfo("Follow, unfollow, befriend, mute, block and manage close "
                                   "friends"),
    Scope.READ_NOTIFICATIONS: ScopeInfo("Read your notifications and notification settings"),
    Scope.WRITE_NOTIFICATIONS: ScopeInfo("Mark notifications read, change notification "
                                         "settings, manage push subscriptions"),
    Scope.READ_MEDIA: ScopeInfo("See media and its processing state"),
    Scope.WRITE_MEDIA: ScopeInfo("Upload media"),
    Scope.WRITE_ANALYTICS: ScopeInfo("Send usage events from the app: what you viewed and "
                                     "for how long"),
    Scope.ACCOUNT: ScopeInfo("Account security: password, email, phone, sessions, apps and "
                             "grants, deletion (first-party only)", grantable=False),
    Scope.ADMIN: ScopeInfo("Administration, for admins (first-party only; the admin role "
                           "is checked too)", grantable=False),
}

# A first-party token (the person's own session) carries this and passes every scope check;
# roles are still checked on their own.
FIRST_PARTY = "*"


def parent(scope: str) -> str | None:
    """The scope that covers this one (`read` for `read:messages`); None at the top."""
    head, sep, _ = scope.partition(":")
    return head if sep else None


def covers(granted: Iterable[str], required: Scope) -> bool:
    """Whether a token carrying `granted` may call a command that requires `required`."""
    held = set(granted)
    if FIRST_PARTY in held:
        return True
    name: str | None = required.value
    while name is not None:
        if name in held:
            return True
        name = parent(name)
    return False


def grantable() -> list[Scope]:
    """The scopes a third-party app may ask for, in catalogue order."""
    return [scope for scope, info in CATALOGUE.items() if info.grantable]


def describe() -> list[dict[str, object]]:
    """The catalogue as JSON-ready rows, for the API documents and the scopes endpoint."""
    return [
        {"scope": scope.value, "description": info.description, "grantable": info.grantable,
         "parent": parent(scope.value)}
        for scope, info in CATALOGUE.items()
    ]
