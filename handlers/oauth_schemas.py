"""Wire models of OAuth apps, grants and the scope catalogue, with the rules their fields follow."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, Field, field_validator

from handlers.commands import Input
from handlers.pagination import PageInput
from handlers.scopes import CATALOGUE, Scope
from storage.oauth_apps import Grant, OAuthApp

REDIRECT_URIS_MAX = 10
URI_CHARS_MAX = 2000
# Hosts an http:// redirect may name: the app listens on the user's own machine (RFC 8252
# section 7.3), so nothing crosses a network in clear text.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
# A private-use scheme of a native app is a reverse domain name it controls (RFC 8252
# section 7.1): at least one dot, so `javascript:`, `data:` or `file:` can never qualify.
PRIVATE_SCHEME = re.compile(r"^[a-z][a-z0-9+-]*(\.[a-z0-9][a-z0-9+-]*)+$")


def check_redirect_uri(uri: str) -> str:
    """The URI if an app may register it; ValueError saying which rule it breaks."""
    if len(uri) > URI_CHARS_MAX:
        raise ValueError(f"at most {URI_CHARS_MAX} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in uri):
        raise ValueError("no spaces or control characters")
    # Matching is exact; a pattern would let anyone who controls one matching URL take codes.
    if "*" in uri:
        raise ValueError("no wildcards: redirect URIs are matched exactly")
    # RFC 6749 section 3.1.2: the redirection endpoint URI must not include a fragment.
    if "#" in uri:
        raise ValueError("no fragment (#...)")
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a URI: {exc}") from None
    scheme = parts.scheme
    if not scheme or uri[: len(scheme)] != scheme.lower():
        raise ValueError("needs a lowercase scheme (https://, http://127.0.0.1, com.example.app:/)")
    if scheme in ("https", "http"):
        if not parts.hostname:
            raise ValueError("needs a host")
        if parts.username is not None or "@" in parts.netloc:
            raise ValueError("no user name or password in the URI")
        if scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
            raise ValueError("http is only for loopback hosts (127.0.0.1, [::1], localhost); "
                             "use https")
        if port == 0:
            raise ValueError("port 0 is not a port")
        return uri
    if not PRIVATE_SCHEME.match(scheme):
        raise ValueError("a custom scheme must be a reverse domain name you control, "
                         "like com.example.app:/callback (RFC 8252)")
    if parts.netloc or not parts.path.startswith("/") or parts.path.startswith("//"):
        raise ValueError("a custom-scheme URI has a path and no authority: "
                         "com.example.app:/callback (one slash)")
    return uri


def check_scope(name: str) -> str:
    """The scope if an app may ask for it; ValueError naming why not."""
    try:
        scope = Scope(name)
    except ValueError:
        raise ValueError(f"no scope {name!r} in the catalogue (GET /v1/oauth/scopes)") from None
    if not CATALOGUE[scope].grantable:
        raise ValueError(f"the scope {name!r} is never grantable to a third-party app")
    return name


def _unique(values: list[str], what: str) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError(f"each {what} once")
    return values


def check_website(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname or "@" in parts.netloc:
        raise ValueError("an http(s) URL with a host")
    return url


# Checked one by one, so an error names the item (`redirect_uris.1`).
RedirectUri = Annotated[str, AfterValidator(check_redirect_uri)]
AppScope = Annotated[str, AfterValidator(check_scope)]


class AppFields(Input):
    """What an owner says about an app; create requires the first four."""

    name: str = Field(min_length=1, max_length=100)
    website: str | None = Field(default=None, min_length=1, max_length=500)
    logo_media_id: uuid.UUID | None = Field(
        default=None, description="an image you uploaded (POST /v1/media)")
    redirect_uris: list[RedirectUri] = Field(min_length=1, max_length=REDIRECT_URIS_MAX, description=(
        "exact URIs: https, http only on 127.0.0.1 / [::1] / localhost, or a reverse-DNS "
        "custom scheme (com.example.app:/callback); no fragments, no wildcards"))
    allowed_scopes: list[AppScope] = Field(min_length=1, max_length=len(CATALOGUE),
                                           description="grantable scopes the app may ask for")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value

    @field_validator("website")
    @classmethod
    def _website(cls, value: str | None) -> str | None:
        return None if value is None else check_website(value)

    @field_validator("redirect_uris")
    @classmethod
    def _redirect_uris(cls, value: list[str]) -> list[str]:
        return _unique(value, "redirect URI")

    @field_validator("allowed_scopes")
    @classmethod
    def _scopes(cls, value: list[str]) -> list[str]:
        return _unique(value, "scope")


class AppCreateInput(AppFields):
    client_type: Literal["confidential", "public"] = Field(description=(
        "confidential: a server that can keep a secret; public: a native or browser app, "
        "which has no secret and must use PKCE"))


class AppUpdateInput(AppFields):
    """Only the fields sent change; website and logo_media_id may be set to null."""

    app_id: uuid.UUID
    name: str = Field(default="", min_length=1, max_length=100)
    redirect_uris: list[RedirectUri] = Field(default_factory=list, min_length=1,
                                             max_length=REDIRECT_URIS_MAX)
    allowed_scopes: list[AppScope] = Field(default_factory=list, min_length=1,
                                           max_length=len(CATALOGUE))


class AppIdInput(Input):
    app_id: uuid.UUID


class AppSuspendInput(Input):
    app_id: uuid.UUID
    reason: str | None = Field(default=None, min_length=1, max_length=500,
                               description="shown to the app's owner")


class AppOut(BaseModel):
    """An app as its owner sees it; the secret is never here (only its rotation time)."""

    id: str
    client_id: str
    name: str
    website: str | None
    logo_media_id: str | None
    redirect_uris: list[str]
    client_type: Literal["confidential", "public"]
    allowed_scopes: list[str]
    secret_rotated_at: datetime | None
    suspended_at: datetime | None
    suspended_reason: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, app: OAuthApp) -> AppOut:
        return cls(
            id=str(app.id), client_id=app.client_id, name=app.name, website=app.website,
            logo_media_id=None if app.logo_media_id is None else str(app.logo_media_id),
            redirect_uris=list(app.redirect_uris),
            client_type="public" if app.client_type == "public" else "confidential",
            allowed_scopes=list(app.allowed_scopes), secret_rotated_at=app.secret_rotated_at,
            suspended_at=app.suspended_at, suspended_reason=app.suspended_reason,
            created_at=app.created_at, updated_at=app.updated_at,
        )


class AppWithSecret(AppOut):
    """A created app, or one whose secret was rotated: the only time the secret is shown."""

    client_secret: str | None = Field(description="null for a public client; store it now, "
                                                  "it is never shown again")


class AppPage(BaseModel):
    items: list[AppOut]
    next_cursor: str | None


class GrantApp(BaseModel):
    """The app of a grant, as the user who granted it sees it."""

    id: str
    client_id: str
    name: str
    website: str | None
    logo_media_id: str | None
    suspended: bool


class GrantOut(BaseModel):
    app: GrantApp
    scopes: list[str]
    granted_at: datetime
    updated_at: datetime
    last_used_at: datetime | None = Field(description="the last token refresh of this app "
                                                      "for you; null if no token is live")

    @classmethod
    def of(cls, grant: Grant) -> GrantOut:
        app = grant.app
        return cls(
            app=GrantApp(id=str(app.id), client_id=app.client_id, name=app.name,
                         website=app.website,
                         logo_media_id=None if app.logo_media_id is None
                         else str(app.logo_media_id),
                         suspended=app.suspended_at is not None),
            scopes=list(grant.consent.scopes), granted_at=grant.consent.created_at,
            updated_at=grant.consent.updated_at, last_used_at=grant.last_used_at,
        )


class GrantListInput(PageInput):
    """The grants you gave, newest first."""


class GrantPage(BaseModel):
    items: list[GrantOut]
    next_cursor: str | None


class AppListInput(PageInput):
    """Your apps, newest first."""


class ScopeOut(BaseModel):
    scope: str
    description: str
    grantable: bool = Field(description="whether a third-party app may ask for it")
    parent: str | None = Field(description="the scope that covers this one (read covers "
                                           "read:messages)")


class ScopeList(BaseModel):
    scopes: list[ScopeOut]

