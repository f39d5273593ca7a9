"""OAuth client credentials: client ids, secrets, and authenticating a client.

A secret is 256 random bits, so a fast keyed hash is as safe to store as a slow password
hash (there is nothing to guess), and checking it costs microseconds on the token endpoint.
The HMAC key is the app's client_id rather than a server-wide key: a hash copied to another
app's row does not verify there, and rotating server keys never invalidates app secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from handlers.errors import CommandError
from storage import oauth_apps as app_store
from storage.db import Database
from storage.oauth_apps import OAuthApp

# Prefixes make a leaked secret recognisable to secret scanners and to people.
SECRET_PREFIX = "hss_"
# Compared against when the client_id is unknown, so an unknown id costs what a wrong
# secret costs.
_DUMMY_KEY = "unknown-client"


def new_client_id() -> str:
    """A public, random client identifier (not derived from the row id)."""
    return secrets.token_urlsafe(18)


def hash_secret(client_id: str, secret: str) -> bytes:
    return hmac.new(client_id.encode(), secret.encode(), hashlib.sha256).digest()


def new_client_secret(client_id: str) -> tuple[str, bytes]:
    """A secret for the app's owner (shown once) and the hash stored instead of it."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    return secret, hash_secret(client_id, secret)


def invalid_client(message: str = "client authentication failed") -> CommandError:
    # RFC 6749 section 5.2 names this error invalid_client; the token endpoint maps it.
    return CommandError("unauthorized", message, {"reason": "invalid_client"})


async def authenticate_client(db: Database, client_id: str, client_secret: str | None) -> OAuthApp:
    """The app a client authenticates as; unauthorized (reason invalid_client) otherwise.

    A confidential client needs its current secret, compared in constant time; a public
    client presents none (it proves itself with PKCE instead), and presenting one is
    refused so a misconfigured client is noticed. Suspended and deleted apps are refused.
    """
    app = await app_store.get_app_by_client_id(db, client_id) if client_id else None
    stored = app.secret_hash if app is not None else None
    # Always compute and compare one HMAC, whatever was found, so timing tells nothing.
    given = hash_secret(client_id if app is not None else _DUMMY_KEY, client_secret or "")
    matches = hmac.compare_digest(given, stored or hash_secret(_DUMMY_KEY, "\x00"))
    if app is None or app.deleted_at is not None:
        raise invalid_client()
    if app.client_type == "public":
        if client_secret:
            raise invalid_client("a public client has no secret")
    elif not client_secret or stored is None or not matches:
        raise invalid_client()
    if app.suspended_at is not None:
        raise CommandError("unauthorized", "this app is suspended",
                           {"reason": "invalid_client", "suspended": True})
    return app
