"""Helpers for the OAuth tests: verified owners, apps made over REST, grants made in storage
(until the authorize flow exists), and a recorder of a socket's session.revoked."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from handlers.tokens import new_opaque_token
from server.resources import SERVICES
from storage import oauth_apps as app_store
from storage import sessions as session_store
from tests.conftest import Account, signup
from tests.handlers.conversation_helpers import ok, rest

REDIRECT = "https://app.example.com/callback"


async def owner(client: TestClient[Any, Any], db: asyncpg.Connection) -> Account:
    """A new account with a verified email, so it may register apps."""
    account = await signup(client)
    await db.execute("UPDATE users SET email_verified_at = now() WHERE id = $1::uuid", account.id)
    return account


async def make_admin(db: asyncpg.Connection, account: Account) -> None:
    await db.execute("UPDATE users SET role = 'admin' WHERE id = $1::uuid", account.id)


def app_body(**fields: Any) -> dict[str, Any]:
    return {"name": "Test app", "redirect_uris": [REDIRECT], "client_type": "confidential",
            "allowed_scopes": ["openid", "read", "write:messages"], **fields}


async def create_app(client: TestClient[Any, Any], account: Account, **fields: Any) -> dict[str, Any]:
    return dict(await ok(await rest(client, account, "oauth.app.create", app_body(**fields)), 201))


@dataclass
class AppToken:
    """A token family of an app for one user, made the way the token endpoint will."""

    session_id: uuid.UUID
    access_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


async def grant(client: TestClient[Any, Any], app_id: str, user: Account,
                scopes: list[str]) -> AppToken:
    """The user's consent to the app and a session of the app carrying the scopes."""
    services = client.app[SERVICES]
    await app_store.upsert_consent(services.db, uuid.UUID(user.id), uuid.UUID(app_id), scopes)
    _, refresh_hash = new_opaque_token()
    session = await session_store.create_session(
        services.db, user_id=uuid.UUID(user.id), scopes=scopes, token_hash=refresh_hash,
        expires_at=services.clock() + timedelta(days=1), user_agent="test app", ip=None,
        client_id=uuid.UUID(app_id))
    access = services.tokens.issue(uuid.UUID(user.id), session.id, scopes)
    return AppToken(session.id, access.token)


