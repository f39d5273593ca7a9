"""The OAuth 2.0 / OIDC use cases behind /oauth/authorize, /oauth/token, /oauth/revoke and
/oauth/introspect: codes, token families, refresh rotation, revocation, introspection.

The protocol parsing and validation (parameters, client authentication, PKCE) is Authlib's,
in server/oauth_server.py; these functions do what the validated request asks, against the
database, and raise FlowError with an RFC 6749 error code when they must refuse.
An app's token family for one user is a `sessions` row with client_id, so revoking one is
revoking a session: the revocation list and the sockets learn it as for any login.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from datetime import timedelta
from typing import Any

from handlers.context import Services
from handlers.errors import CommandError
from handlers.oidc import issue_id_token
from handlers.scopes import Scope, parent
from handlers.tokens import APP_SUBJECT_PREFIX, hash_token, new_opaque_token
from storage import oauth_apps as app_store
from storage import oauth_codes as code_store
from storage import sessions as session_store
from storage import users as user_store
from storage.oauth_apps import OAuthApp
from storage.oauth_codes import AuthorizationCode

# Issue 11: codes live 60 s and are single use.
CODE_TTL_S = 60
# A refresh token presented again this soon after its first use, by the same app, while
# its successor is unspent, is a concurrent retry (two tabs, a retried request after a
# lost response) and gets the same new refresh token instead of revoking the family.
REFRESH_GRACE_S = 10
# Scopes that describe the user sign-in, meaningless for an app acting for itself.
USER_ONLY_SCOPES = frozenset({Scope.OPENID.value, Scope.PROFILE.value, Scope.EMAIL.value,
                              Scope.OFFLINE_ACCESS.value})


class FlowError(Exception):
    """A refusal with an RFC 6749 section 5.2 error code (invalid_grant, invalid_scope...)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def live_app(app: OAuthApp | None) -> OAuthApp | None:
    """The app if it may take part in a flow now (not deleted, not suspended)."""
    if app is None or app.deleted_at is not None or app.suspended_at is not None:
        return None
    return app


def still_allowed(app: OAuthApp, scopes: tuple[str, ...] | list[str]) -> list[str]:
    """The scopes the app may still hold: allowed, or covered by an allowed parent."""
    allowed = set(app.allowed_scopes)
    return [s for s in scopes if s in allowed or parent(s) in allowed]


def covered_by_consent(remembered: tuple[str, ...], requested: list[str]) -> bool:
    """Whether a remembered consent already covers every requested scope."""
    held = set(remembered)
    return all(s in held or parent(s) in held for s in requested)


def _successor(services: Services, refresh_token: str) -> str:
    """The refresh token that replaces this one: an HMAC of it under a server secret.

    Derived, not random, so that a retry within the grace window gets the same successor
    back without the server ever storing a usable refresh token.
    """
    key = hmac.new(services.settings.resolved_oauth_key_secret(), b"hotspot oauth refresh",
                   hashlib.sha256).digest()
    digest = hmac.new(key, refresh_token.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def issue_code(
    services: Services, app: OAuthApp, code: str, *, user_id: uuid.UUID, redirect_uri: str,
    scopes: list[str], code_challenge: str | None, code_challenge_method: str | None,
    nonce: str | None, auth_time: int,
) -> None:
    """Write a 60-second code (Authlib's random code) bound to everything the token
    request must match; only its hash is stored."""
    now = services.clock()
    await code_store.create_code(
        services.db, code_hash=hash_token(code), app_id=app.id, user_id=user_id,
        redirect_uri=redirect_uri, scopes=scopes, code_challenge=code_challenge,
        code_challenge_method=code_challenge_method if code_challenge else None, nonce=nonce,
        auth_time=now.fromtimestamp(auth_time, now.tzinfo),
        expires_at=now + timedelta(seconds=CODE_TTL_S))


async def _end(services: Services, user_id: uuid.UUID, session_ids: list[uuid.UUID],
               reason: str) -> None:
    await services.revocations.revoke(session_ids)
    await services.realtime.end_sessions(user_id, session_ids, reason)


async def find_code(services: Services, code: str, app: OAuthApp) -> AuthorizationCode | None:
    """The app's unspent, unexpired code; None otherwise.

    A code coming back after it was spent means it leaked: the token family its first use
    opened is revoked (RFC 6749 section 4.1.2).
    """
    found = await code_store.get_code(services.db, hash_token(code))
    if found is None or found.app_id != app.id:
        return None
    if found.used_at is not None:
        if found.session_id is not None:
            await session_store.revoke_session(services.db, found.session_id, "code_reuse")
            await _end(services, found.user_id, [found.session_id], "code_reuse")
        return None
    if found.expires_at <= services.clock():
        return None
    return found


async def exchange_code(
    services: Services, app: OAuthApp, code: AuthorizationCode, *, ip: str | None,
    user_agent: str | None,
) -> dict[str, Any]:
    """Spend the code and open the app's token family for its user.

    Spending the code, opening the family and recording it on the code are one transaction:
    the spending UPDATE holds the code's row lock until commit, so a concurrent second use
    waits on it and then finds the family already recorded, and revokes it (RFC 6749
    section 4.1.2). Recorded in a later step, a second use in between would find nothing to
    revoke and the first use's tokens would live on.
    """
    user = await user_store.get_user(services.db, code.user_id)
    scopes = still_allowed(app, code.scopes)
    offline = Scope.OFFLINE_ACCESS.value in scopes
    refresh, refresh_hash = new_opaque_token()
    settings = services.settings
    # Without offline_access the family ends with its access token: no refresh token
    # is handed out, and the session row only carries revocation.
    lifetime = settings.refresh_token_ttl_s if offline else settings.access_token_ttl_s
    session = None
    async with services.db.transaction() as conn:
        spent = await code_store.spend_code(conn, code.code_hash)
        if spent and user is not None and user.active:
            session = await session_store.insert_session(
                conn, user_id=user.id, scopes=scopes, token_hash=refresh_hash,
                expires_at=services.clock() + timedelta(seconds=lifetime),
                user_agent=user_agent, ip=ip, client_id=app.id)
            await code_store.bind_session(conn, code.code_hash, session.id)
    if not spent:
        # Another request spent it after our lookup; its family is recorded by now.
        again = await code_store.get_code(services.db, code.code_hash)
        if again is not None and again.session_id is not None:
            await session_store.revoke_session(services.db, again.session_id, "code_reuse")
            await _end(services, again.user_id, [again.session_id], "code_reuse")
        raise FlowError("invalid_grant", "the authorization code was already used")
    if user is None or session is None:
        raise FlowError("invalid_grant", "the code's user no longer exists")
    return token_response(services, app, user, session.id, scopes,
                           refresh if offline else None, code.nonce,
                           int(code.auth_time.timestamp()))


def token_response(
    services: Services, app: OAuthApp, user: user_store.User, session_id: uuid.UUID,
    scopes: list[str], refresh: str | None, nonce: str | None, auth_time: int,
) -> dict[str, Any]:
    access = services.tokens.issue(user.id, session_id, scopes, client_id=app.client_id)
    body: dict[str, Any] = {"access_token": access.token, "token_type": "Bearer",
                            "expires_in": access.expires_in, "scope": " ".join(scopes)}
    if refresh is not None:
        body["refresh_token"] = refresh
    if Scope.OPENID.value in scopes:
        settings = services.settings
        body["id_token"] = issue_id_token(
            services.oauth_keys, issuer=settings.oauth_issuer, user=user,
            client_id=app.client_id, scopes=scopes, auth_time=auth_time,
            ttl_s=settings.oauth_id_token_ttl_s, base_url=settings.public_base_url,
            nonce=nonce, access_token=access.token)
    return body


async def refresh_family(services: Services, refresh_token: str) -> session_store.Session | None:
    """The live family a refresh token belongs to (spent or not), to check its client."""
    return await session_store.session_for_refresh_token(services.db, hash_token(refresh_token))


async def refresh(
    services: Services, app: OAuthApp, refresh_token: str, requested: list[str] | None,
) -> dict[str, Any]:
    """Rotate the app's refresh token; reuse outside the grace window revokes the family."""
    family = await refresh_family(services, refresh_token)
    if family is None or family.client_id != app.id:
        # Another app's token is refused as unknown and left alone: not spent, not revoked.
        # Only the app it was issued to can use or end it (RFC 6749 section 10.4, RFC 7009
        # section 2.1); otherwise any app that saw a token could sign its user out elsewhere.
        raise FlowError("invalid_grant", "invalid refresh token")
    # Refused before rotating, so asking too much does not spend the token.
    if requested is not None and not set(requested) <= set(still_allowed(app, family.scopes)):
        raise FlowError("invalid_scope", "a refresh may only narrow the granted scopes")
    successor = _successor(services, refresh_token)
    rotation = await session_store.rotate_with_grace(
        services.db, hash_token(refresh_token), hash_token(successor), REFRESH_GRACE_S)
    session = rotation.session
    if rotation.status == "reused" and session is not None:
        await _end(services, session.user_id, [session.id], "refresh_token_reuse")
        raise FlowError("invalid_grant", "refresh token already used; the grant's tokens "
                        "are revoked")
    if rotation.status not in ("rotated", "grace") or session is None:
        raise FlowError("invalid_grant", "invalid refresh token")
    user = await user_store.get_user(services.db, session.user_id)
    if user is None or not user.active:
        raise FlowError("invalid_grant", "the grant's user no longer exists")
    # The app may have lost scopes since: what it may no longer ask for is not renewed.
    scopes = still_allowed(app, session.scopes)
    if requested is not None:
        if not set(requested) <= set(scopes):
            raise FlowError("invalid_scope", "a refresh may only narrow the granted scopes")
        scopes = [s for s in scopes if s in requested]
    return token_response(services, app, user, session.id, scopes, successor, None,
                           int(session.created_at.timestamp()))


def client_credentials(services: Services, app: OAuthApp, requested: list[str] | None) -> dict[str, Any]:
    """A token for the app itself (no user): sub "app:<client_id>", no refresh token."""
    own = [s for s in app.allowed_scopes if s not in USER_ONLY_SCOPES]
    scopes = own if requested is None else requested
    if not set(scopes) <= set(own):
        raise FlowError("invalid_scope", "an app's own token may carry only the app's "
                        "allowed scopes, and none of openid, profile, email, offline_access")
    access = services.tokens.issue_app_only(app.client_id, uuid.uuid4(), scopes)
    return {"access_token": access.token, "token_type": "Bearer",
            "expires_in": access.expires_in, "scope": " ".join(scopes)}


def _access_claims(services: Services, token: str) -> dict[str, Any] | None:
    try:
        return services.tokens.app_token_claims(token)
    except CommandError:
        return None


async def revoke_token(services: Services, app: OAuthApp, token: str) -> None:
    """RFC 7009: end the family of an app's refresh or access token; others are ignored."""
    family = await refresh_family(services, token)
    if family is not None:
        if family.client_id == app.id:
            await session_store.revoke_session(services.db, family.id, "app_revoked")
            await _end(services, family.user_id, [family.id], "app_revoked")
        return
    claims = _access_claims(services, token)
    if claims is None or claims["client_id"] != app.client_id:
        return
    sid = uuid.UUID(claims["sid"])
    if str(claims["sub"]).startswith(APP_SUBJECT_PREFIX):
        await services.revocations.revoke([sid])
        return
    await session_store.revoke_session(services.db, sid, "app_revoked")
    await _end(services, uuid.UUID(claims["sub"]), [sid], "app_revoked")


async def introspect(services: Services, app: OAuthApp, token: str) -> dict[str, Any]:
    """RFC 7662 for the app's own tokens; anything else (or ended) is {"active": false}."""
    inactive: dict[str, Any] = {"active": False}
    family = await refresh_family(services, token)
    if family is not None:
        live = await session_store.get_session(services.db, family.id)
        if live is None or family.client_id != app.id:
            return inactive
        return {"active": True, "token_type": "refresh_token", "client_id": app.client_id,
                "scope": " ".join(still_allowed(app, live.scopes)), "sub": str(live.user_id),
                "iat": int(live.created_at.timestamp()), "exp": int(live.expires_at.timestamp()),
                "aud": services.settings.oauth_issuer}
    claims = _access_claims(services, token)
    if claims is None or claims["client_id"] != app.client_id or claims["exp"] <= time.time():
        return inactive
    if services.revocations.is_revoked(claims["sid"]):
        return inactive
    if not str(claims["sub"]).startswith(APP_SUBJECT_PREFIX):
        # The revocation list forgets after a token lifetime; the session row does not.
        if await session_store.get_session(services.db, uuid.UUID(claims["sid"])) is None:
            return inactive
    return {"active": True, "token_type": "Bearer",
            **{name: claims[name] for name in ("scope", "client_id", "sub", "exp", "iat", "aud")}}


async def remembered_consent(services: Services, user_id: uuid.UUID, app: OAuthApp,
                             scopes: list[str]) -> bool:
    consent = await app_store.get_consent(services.db, user_id, app.id)
    return consent is not None and covered_by_consent(consent.scopes, scopes)


async def remember_consent(services: Services, user_id: uuid.UUID, app: OAuthApp,
                           scopes: list[str]) -> None:
    """Remember what was granted, keeping what an earlier consent granted besides."""
    consent = await app_store.get_consent(services.db, user_id, app.id)
    merged = list(dict.fromkeys([*(consent.scopes if consent else ()), *scopes]))
    await app_store.upsert_consent(services.db, user_id, app.id, merged)


def new_csrf_nonce() -> str:
    return secrets.token_urlsafe(24)
