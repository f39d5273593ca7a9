"""OpenID Connect: the id_token (Core 3.1.3.6) and the UserInfo claims, both by scope.

One function decides which user claims a client sees for a set of granted scopes, so the
id_token and /oauth/userinfo never disagree: `email` and `email_verified` only with the
`email` scope and only for a verified address; the profile claims only with `profile`.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from handlers.account_schemas import released_email
from handlers.context import Principal, Services
from handlers.errors import CommandError
from handlers.oauth_keys import KeyRing
from handlers.scopes import Scope, covers
from storage import users as user_store
from storage.users import User

# The header type of an id_token; an access token is at+jwt (handlers/tokens.py), so
# neither can stand in for the other.
ID_TOKEN_TYP = "JWT"

# Every claim an id_token or /oauth/userinfo may carry (the discovery document lists them).
CLAIMS_SUPPORTED = [
    "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "azp",
    "email", "email_verified", "preferred_username", "name", "picture", "profile",
    "updated_at",
]


def profile_url(base_url: str, user: User) -> str:
    """The `profile` claim: where the user's public profile is read (the API route)."""
    return f"{base_url.rstrip('/')}/v1/users/by_username/{quote(user.username, safe='')}"


def user_claims(user: User, scopes: Iterable[str], base_url: str) -> dict[str, Any]:
    """The claims about the user that these scopes release, beyond `sub`."""
    granted = frozenset(scopes)
    claims: dict[str, Any] = {}
    email = released_email(user, granted)
    if email is not None:
        claims["email"] = email
        claims["email_verified"] = True
    if covers(granted, Scope.PROFILE):
        claims["preferred_username"] = user.username
        claims["name"] = user.display_name
        if user.avatar_url:
            claims["picture"] = user.avatar_url
        claims["profile"] = profile_url(base_url, user)
        claims["updated_at"] = int(user.updated_at.timestamp())
    return claims


def at_hash(access_token: str, alg: str) -> str:
    """OIDC Core 3.1.3.6: the left half of the access token's hash, base64url.

    ES256 and RS256 both hash with SHA-256, the only algorithms the key ring uses.
    """
    if alg not in ("ES256", "RS256"):
        raise ValueError(f"no at_hash rule for {alg}")
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def issue_id_token(
    keys: KeyRing, *, issuer: str, user: User, client_id: str, scopes: Iterable[str],
    auth_time: int, ttl_s: int, base_url: str, nonce: str | None = None,
    access_token: str | None = None, now: float | None = None, alg: str | None = None,
) -> str:
    """A signed id_token for the user, to client_id, with the claims its scopes release.

    alg: the client's registered id_token algorithm (OIDC's default for clients is RS256);
    None signs with the configured HOTSPOT_OAUTH_SIGNING_ALG.
    """
    issued_at = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": str(user.id),
        "aud": client_id,
        # OIDC Core 2: azp is the party the token was issued to; with one audience, the same.
        "azp": client_id,
        "exp": issued_at + ttl_s,
        "iat": issued_at,
        "auth_time": auth_time,
    }
    if nonce is not None:
        claims["nonce"] = nonce
    if access_token is not None:
        claims["at_hash"] = at_hash(access_token, keys.signing_key(alg).alg)
    claims.update(user_claims(user, scopes, base_url))
    return keys.sign(claims, typ=ID_TOKEN_TYP, alg=alg)


async def userinfo(services: Services, principal: Principal) -> dict[str, Any]:
    """The UserInfo response (OIDC Core 5.3) for a verified access token with `openid`."""
    if not covers(principal.scopes, Scope.OPENID):
        raise CommandError("forbidden", "the token lacks the scope 'openid'",
                           {"required_scope": Scope.OPENID.value})
    user = await user_store.get_user(services.db, principal.user_id)
    if user is None or not user.active:
        raise CommandError("unauthorized", "the token's user no longer exists",
                           {"reason": "token_invalid"})
    return {"sub": str(user.id),
            **user_claims(user, principal.scopes, services.settings.public_base_url)}

