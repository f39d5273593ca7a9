"""The device authorization grant (RFC 8628): TVs, CLIs and bots that cannot show a browser.

The device asks for a pair of codes (`start`), shows the user code and the verification
URI, and polls the token endpoint (`poll`, then `exchange`); the person types the user code
on /oauth/device, signs in, and approves or denies (`find_pending`, `decide`). Protocol
parsing and client authentication are Authlib's (server/oauth_server.py); refusals are
FlowError with the RFC 8628 section 3.5 codes. The tokens are issued as the authorization
code's are: a session row with the app's id, then handlers/oauth_flows' token response.
"""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from handlers.context import Services
from handlers.oauth_flows import (
    FlowError,
    live_app,
    remember_consent,
    still_allowed,
    token_response,
)
from handlers.scopes import Scope
from handlers.tokens import hash_token, new_opaque_token
from storage import oauth_apps as app_store
from storage import oauth_device_codes as store
from storage import sessions as session_store
from storage import users as user_store
from storage.db import UniqueViolation
from storage.oauth_apps import OAuthApp
from storage.oauth_device_codes import DeviceCode

# RFC 8628 6.1: consonants only (no words spelled by accident) and no digits (nothing to
# mistake for O, I or S); 20^8 codes, about 34 bits, against a per-IP failure limit.
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
# The polling interval handed out, and what each slow_down adds (RFC 8628 3.5).
POLL_INTERVAL_S = 5
SLOW_DOWN_STEP_S = 5
# A user code that collides with a kept one is drawn again; this many tries is plenty.
_DRAWS = 5
_SEPARATORS = re.compile(r"[\s\-]+")


def new_user_code() -> str:
    return "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))


def display_user_code(code: str) -> str:
    """XXXX-XXXX, as the device shows it."""
    return f"{code[:4]}-{code[4:]}"


def normalize_user_code(typed: str) -> str | None:
    """What the person typed, case-insensitive, dashes and spaces ignored; None if it cannot
    be a user code at all (so it is not worth a lookup)."""
    code = _SEPARATORS.sub("", typed).upper()
    if len(code) != USER_CODE_LENGTH or any(c not in USER_CODE_ALPHABET for c in code):
        return None
    return code


def verification_uri(services: Services) -> str:
    return f"{services.settings.oauth_issuer}/oauth/device"


async def start(services: Services, app: OAuthApp, scopes: list[str]) -> dict[str, Any]:
    """A new pending pair for the app (scopes already checked against its allowed ones);
    the RFC 8628 3.2 device authorization response."""
    device_code = secrets.token_urlsafe(32)
    ttl = services.settings.oauth_device_code_ttl_s
    expires_at = services.clock() + timedelta(seconds=ttl)
    for draw in range(_DRAWS):
        user_code = new_user_code()
        try:
            await store.create_device_code(
                services.db, device_code_hash=hash_token(device_code), user_code=user_code,
                app_id=app.id, scopes=scopes, interval_s=POLL_INTERVAL_S, expires_at=expires_at)
            break
        except UniqueViolation:
            if draw == _DRAWS - 1:
                raise
    shown = display_user_code(user_code)
    uri = verification_uri(services)
    return {"device_code": device_code, "user_code": shown, "verification_uri": uri,
            "verification_uri_complete": f"{uri}?{urlencode({'user_code': shown})}",
            "expires_in": ttl, "interval": POLL_INTERVAL_S}


async def find_pending(services: Services, user_code: str) -> tuple[DeviceCode, OAuthApp] | None:
    """The pending, unexpired pair of a normalized user code and its app, if the app may
    still take part in a flow (a suspended app's codes cannot be approved)."""
    found = await store.pending_by_user_code(services.db, user_code, services.clock())
    if found is None:
        return None
    app = live_app(await app_store.get_app(services.db, found.app_id))
    return None if app is None else (found, app)


def granted_scopes(requested: tuple[str, ...], ticked: set[str]) -> list[str]:
    """The requested scopes the person left ticked; openid is the sign-in and stays."""
    return [s for s in requested if s in ticked or s == Scope.OPENID.value]


async def decide(
    services: Services, app: OAuthApp, user_code: str, *, user_id: uuid.UUID, auth_time: int,
    approved: bool, scopes: list[str],
) -> DeviceCode | None:
    """Approve (with these scopes) or deny; None if the pair is no longer pending.

    An approval is remembered as a consent, so the grant is listed and revocable with the
    person's other apps (oauth.grant.list / oauth.grant.revoke).
    """
    now = services.clock()
    decided = await store.decide(services.db, user_code, now, user_id=user_id,
                                 approved=approved, scopes=scopes,
                                 auth_time=datetime.fromtimestamp(auth_time, now.tzinfo))
    if decided is not None and approved:
        await remember_consent(services, user_id, app, scopes)
    return decided


async def poll(services: Services, app: OAuthApp, device_code: str) -> DeviceCode:
    """Judge one poll; the approved pair, or FlowError with what the device must do.

    The order is Authlib's DeviceCodeGrant's: expired, then the person's decision, then the
    polling pace. A poll sooner than the pair's interval after the previous one is slow_down
    and adds 5 s to the interval for every later poll (RFC 8628 3.5).
    """
    code_hash = hash_token(device_code)
    now = services.clock()
    async with services.db.transaction() as conn:
        found = await store.lock_for_poll(conn, code_hash)
        if found is None or found.app_id != app.id or found.used_at is not None:
            refusal = FlowError("invalid_grant", "invalid or already used device_code")
        elif found.expires_at <= now:
            refusal = FlowError("expired_token", "the device_code has expired; start again")
        elif found.status == "denied":
            refusal = FlowError("access_denied", "the user denied the request")
        elif found.status == "approved":
            return found
        else:
            too_fast = (found.last_polled_at is not None
                        and now < found.last_polled_at + timedelta(seconds=found.interval_s))
            interval = found.interval_s + SLOW_DOWN_STEP_S if too_fast else found.interval_s
            await store.record_poll(conn, code_hash, now, interval)
            refusal = (FlowError("slow_down", f"poll at most every {interval} s") if too_fast
                       else FlowError("authorization_pending", "the user has not answered yet"))
    # Raised after the transaction, so the recorded poll is committed.
    raise refusal


async def exchange(
    services: Services, app: OAuthApp, record: DeviceCode, *, ip: str | None,
    user_agent: str | None,
) -> dict[str, Any]:
    """Spend an approved pair and open the app's token family for the person who approved."""
    assert record.user_id is not None and record.auth_time is not None
    user = await user_store.get_user(services.db, record.user_id)
    scopes = still_allowed(app, record.scopes)
    offline = Scope.OFFLINE_ACCESS.value in scopes
    refresh, refresh_hash = new_opaque_token()
    settings = services.settings
    # As for a code: without offline_access the family ends with its access token.
    lifetime = settings.refresh_token_ttl_s if offline else settings.access_token_ttl_s
    now = services.clock()
    session = None
    async with services.db.transaction() as conn:
        spent = await store.spend(conn, record.device_code_hash, now)
        if spent and user is not None and user.active:
            session = await session_store.insert_session(
                conn, user_id=user.id, scopes=scopes, token_hash=refresh_hash,
                expires_at=now + timedelta(seconds=lifetime), user_agent=user_agent, ip=ip,
                client_id=app.id)
            await store.bind_session(conn, record.device_code_hash, session.id)
    if not spent:
        raise FlowError("invalid_grant", "the device_code was already used")
    if user is None or session is None:
        raise FlowError("invalid_grant", "the approving user no longer exists")
    return token_response(services, app, user, session.id, scopes,
                           refresh if offline else None, None,
                           int(record.auth_time.timestamp()))
