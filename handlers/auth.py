"""Sign-up, login, token refresh, logout and password reset (the email: account_email.py)."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from handlers import activities
from handlers.account_schemas import (
    Accepted,
    AuthResult,
    LoginCredentials,
    OwnProfile,
    PasswordResetConfirmInput,
    PasswordResetInput,
    RefreshInput,
    SignupInput,
    TokenPair,
)
from handlers.commands import Empty, command
from handlers.context import Context, Services
from handlers.errors import CommandError, invalid
from handlers.outbound import enqueue_email
from handlers.rates import Rate, charge, clear, count_failure, refuse_if_failed, within
from handlers.scopes import Scope
from handlers.tokens import hash_token, new_opaque_token
from storage import sessions as session_store
from storage import users as user_store
from storage import verifications
from storage.db import UniqueViolation
from storage.users import User

log = logging.getLogger(__name__)

# First-party logins may do everything the user can; third-party tokens get fewer.
FIRST_PARTY_SCOPES = ["*"]
# Failure counters of auth.login: per IP, and per account whichever of its names is typed.
LOGIN_FAILURES_IP = Rate("login_failures_ip", per="ip")
LOGIN_FAILURES_ACCOUNT = Rate("login_failures_account", per="subject")
# Reset mails per account, refused silently so the answer never tells an account exists.
RESET_MAILS = Rate("password_reset_mail", per="subject")


async def open_session(ctx: Context, user: User) -> AuthResult:
    """Start a login session for the user and hand out its first token pair."""
    services = ctx.services
    refresh, refresh_hash = new_opaque_token()
    session = await session_store.create_session(
        services.db,
        user_id=user.id,
        scopes=FIRST_PARTY_SCOPES,
        token_hash=refresh_hash,
        expires_at=services.clock() + timedelta(seconds=services.settings.refresh_token_ttl_s),
        user_agent=ctx.user_agent,
        ip=ctx.ip,
    )
    access = services.tokens.issue(user.id, session.id, session.scopes)
    return AuthResult(
        user=OwnProfile.of(user),
        access_token=access.token,
        refresh_token=refresh,
        expires_in=access.expires_in,
    )


async def end_sessions(
    services: Services, user_id: uuid.UUID, session_ids: list[uuid.UUID], reason: str
) -> None:
    """Make the sessions' access tokens stop working now, and close their sockets."""
    await services.revocations.revoke(session_ids)
    await services.realtime.end_sessions(user_id, session_ids, reason)


def taken(field: str) -> CommandError:
    """The conflict of a username or email another account already has."""
    return CommandError("conflict", f"this {field} is already taken",
                        {"fields": [{"field": field, "message": "already taken", "type": "taken"}]})


async def send_verification_email(ctx: Context, user: User) -> None:
    """Mail a link that verifies the account's email; counts against verification_mail."""
    services = ctx.services
    if user.email is None:
        return
    # Per account (not per caller): sign-up has no caller yet.
    await charge(ctx, Rate("verification_mail"), str(user.id))
    token, token_hash = new_opaque_token()
    ttl = services.settings.email_token_ttl_s
    await verifications.create_user_token(
        services.db, user_id=user.id, purpose="email_verify", token_hash=token_hash,
        expires_at=services.clock() + timedelta(seconds=ttl), email=user.email,
    )
    link = f"{services.settings.public_base_url}/verify-email?token={token}"
    await enqueue_email(services, user.email, "verify_email", {
        "display_name": user.display_name, "link": link, "token": token,
        "valid_hours": ttl // 3600,
    })


@command("auth.signup", input=SignupInput, rest=("POST", "/auth/signup"), auth="none",
         status=201, output=AuthResult, binds_session=True,
         rate=Rate("signup", per="ip"), activity=activities.SIGNED_UP)
async def signup(ctx: Context, data: SignupInput) -> AuthResult:
    """Create an account and log it in; a verification email is sent."""
    password_hash = await ctx.services.passwords.hash(data.password)
    try:
        user = await user_store.create_user(
            ctx.services.db, username=data.username, email=str(data.email),
            password_hash=password_hash, display_name=data.display_name or data.username,
        )
    except UniqueViolation as exc:
        raise taken("email" if "email" in exc.constraint else "username") from None
    result = await open_session(ctx, user)
    try:
        await send_verification_email(ctx, user)
    except CommandError:
        # The account exists; the user can ask for the mail again with auth.email.resend.
        log.warning("verification email not queued", extra={"user_id": str(user.id)})
    return result


@command("auth.login", input=LoginCredentials, rest=("POST", "/auth/login"), auth="none",
         output=AuthResult, binds_session=True,
         rate=Rate("login", per="ip"), activity=activities.LOGGED_IN)
async def login(ctx: Context, data: LoginCredentials) -> AuthResult:
    """Log in with a username or email and a password."""
    return await open_session(ctx, await check_password(ctx, data.login, data.password))


async def check_password(ctx: Context, login: str, password: str) -> User:
    """The account a login and password name, counting failures (auth.login and the
    OAuth consent page's login form share the counters)."""
    services = ctx.services
    await refuse_if_failed(ctx, LOGIN_FAILURES_IP)
    user = await user_store.get_user_by_login(services.db, login.strip())
    # Failures count per account whichever of its names is typed (username or email).
    account = str(user.id) if user else login.strip().lower()
    await refuse_if_failed(ctx, LOGIN_FAILURES_ACCOUNT, account)
    ok = await services.passwords.verify(user.password_hash if user else None, password)
    if user is None or not ok or not user.active:
        await count_failure(ctx, LOGIN_FAILURES_IP)
        await count_failure(ctx, LOGIN_FAILURES_ACCOUNT, account)
        raise CommandError("unauthorized", "invalid login or password")
    await clear(ctx, LOGIN_FAILURES_ACCOUNT, account)
    return user


@command("auth.refresh", input=RefreshInput, rest=("POST", "/auth/refresh"), auth="none",
         output=TokenPair, binds_session=True,
         rate=Rate("token_refresh", per="ip"))
async def refresh(ctx: Context, data: RefreshInput) -> TokenPair:
    """Trade a refresh token for a new pair; the old one is spent."""
    services = ctx.services
    new_token, new_hash = new_opaque_token()
    rotation = await session_store.rotate_refresh_token(
        services.db, hash_token(data.refresh_token), new_hash
    )
    if rotation.status == "reused" and rotation.session is not None:
        session = rotation.session
        await end_sessions(services, session.user_id, [session.id], "refresh_token_reuse")
        raise CommandError("unauthorized", "refresh token already used; the session is revoked",
                           {"reason": "refresh_token_reuse"})
    if rotation.status != "rotated" or rotation.session is None:
        raise CommandError("unauthorized", "invalid refresh token", {"reason": "token_invalid"})
    session = rotation.session
    access = services.tokens.issue(session.user_id, session.id, session.scopes)
    return TokenPair(access_token=access.token, refresh_token=new_token,
                     expires_in=access.expires_in)


@command("auth.logout", input=RefreshInput, rest=("POST", "/auth/logout"), auth="none",
         status=204,
         rate=Rate("token_refresh", per="ip"))
async def logout(ctx: Context, data: RefreshInput) -> None:
    """End the session a refresh token belongs to."""
    services = ctx.services
    session = await session_store.session_for_refresh_token(
        services.db, hash_token(data.refresh_token)
    )
    if session is None:
        raise CommandError("unauthorized", "invalid refresh token", {"reason": "token_invalid"})
    if ctx.principal is not None and ctx.principal.user_id != session.user_id:
        raise CommandError("forbidden", "that refresh token belongs to another account")
    await session_store.revoke_session(services.db, session.id, "logout")
    await end_sessions(services, session.user_id, [session.id], "logout")


@command("auth.logout_all", rest=("POST", "/auth/logout_all"), scope=Scope.ACCOUNT, status=204,
         rate=Rate("account_change"))
async def logout_all(ctx: Context, data: Empty) -> None:
    """End every session of the caller's account, on every device."""
    await revoke_everything(ctx.services, ctx.user.user_id, "logout_all")


async def revoke_everything(services: Services, user_id: uuid.UUID, reason: str) -> None:
    async with services.db.transaction() as conn:
        ids = await session_store.revoke_user_sessions(conn, user_id, reason)
    await services.revocations.revoke(ids)
    await services.realtime.end_sessions(user_id, None, reason)


@command("auth.password_reset.request", input=PasswordResetInput, rest=("POST", "/auth/password_reset"),
         auth="none", status=202, output=Accepted,
         rate=Rate("password_reset", per="ip"))
async def password_reset(ctx: Context, data: PasswordResetInput) -> Accepted:
    """Mail a one-hour reset link; the answer is the same whether the account exists or not."""
    services = ctx.services
    # Refuse everyone alike when mail cannot be queued: failing only for real accounts
    # would tell a caller which addresses have one.
    if not await services.queue.ping():
        raise CommandError("unavailable", "password reset mail cannot be sent right now; retry")
    user = await user_store.get_user_by_email(services.db, str(data.email))
    # Only a verified address may take over the account: an unverified one (a typo, or one
    # typed by someone else) gets no mail, and the answer does not say so.
    if user is None or user.email is None or user.email_verified_at is None:
        return Accepted()
    # Per address too, silently, so nobody can flood one inbox from many addresses.
    if not await within(ctx, RESET_MAILS, str(user.id)):
        return Accepted()
    token, token_hash = new_opaque_token()
    await verifications.create_user_token(
        services.db, user_id=user.id, purpose="password_reset", token_hash=token_hash,
        expires_at=services.clock() + timedelta(seconds=services.settings.password_reset_ttl_s),
        email=user.email,
    )
    link = f"{services.settings.public_base_url}/reset-password?token={token}"
    await enqueue_email(services, user.email, "password_reset", {
        "display_name": user.display_name, "link": link, "token": token,
        "valid_minutes": services.settings.password_reset_ttl_s // 60})
    return Accepted()


@command("auth.password_reset.confirm", input=PasswordResetConfirmInput,
         rest=("POST", "/auth/password_reset/confirm"), auth="none", status=204,
         rate=Rate("password_reset_confirm", per="ip"))
async def password_reset_confirm(ctx: Context, data: PasswordResetConfirmInput) -> None:
    """Set a new password with a reset token; every session of the account ends."""
    services = ctx.services
    # Hashing is deliberately expensive: do it only for a token that can succeed.
    if not await verifications.user_token_usable(services.db, hash_token(data.token),
                                                 "password_reset"):
        raise invalid("token", "invalid or expired token", "token_invalid")
    password_hash = await services.passwords.hash(data.new_password)
    async with services.db.transaction() as conn:
        consumed = await verifications.consume_user_token(
            conn, hash_token(data.token), "password_reset"
        )
        if consumed is None:
            raise invalid("token", "invalid or expired token", "token_invalid")
        # A link mailed to an address the account has since replaced must not take it over.
        if not await user_store.has_email(conn, consumed.user_id, consumed.email):
            raise invalid("token", "the account's email has changed since this token was sent",
                          "token_stale")
        await user_store.set_password_hash(conn, consumed.user_id, password_hash)
        # The owner reclaiming the account also stops an email change a thief started.
        await user_store.clear_pending_email(conn, consumed.user_id)
        ids = await session_store.revoke_user_sessions(conn, consumed.user_id, "password_reset")
    await services.revocations.revoke(ids)
    await services.realtime.end_sessions(consumed.user_id, None, "password_reset")
