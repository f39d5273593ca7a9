"""Profiles: read, update and delete your own account, read others, verify a phone."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import timedelta
from typing import Any

import phonenumbers

from handlers import activities
from handlers.account_schemas import (
    Accepted,
    AnalyticsOptOutInput,
    ChangePasswordInput,
    DeleteAccountInput,
    OwnProfile,
    PhoneCodeInput,
    PhoneInput,
    PublicProfile,
    UpdateProfileInput,
    UserIdInput,
    UsernameInput,
    UserProfile,
)
from handlers.auth import revoke_everything, taken
from handlers.commands import Empty, command
from handlers.context import Context
from handlers.errors import CommandError, invalid
from handlers.network_schemas import RelationshipOut
from handlers.networks import approve_all_follow_requests
from handlers.oauth_apps import delete_owned_apps
from handlers.outbound import enqueue_sms
from handlers.rates import Rate, count_failure, refuse_if_failed
from handlers.scopes import Scope
from storage import cliques as clique_store
from storage import networks as network_store
from storage import sessions as session_store
from storage import users as user_store
from storage import verifications
from storage.db import UniqueViolation
from storage.users import User

# E.164 proper: no spaces, dashes or letters (phonenumbers alone accepts "+1800FLOWERS").
E164_RE = re.compile(r"\+[1-9][0-9]{1,14}")


# Wrong passwords given to confirm an action, per account: a failure counter.
PASSWORD_FAILURES = Rate("password_failures", per="subject")


async def check_password(ctx: Context, user: User, password: str) -> bool:
    """Verify the account password, refusing once too many wrong ones were tried."""
    await refuse_if_failed(ctx, PASSWORD_FAILURES, str(user.id))
    if await ctx.services.passwords.verify(user.password_hash, password):
        return True
    await count_failure(ctx, PASSWORD_FAILURES, str(user.id))
    return False


async def _me(ctx: Context) -> User:
    user = await user_store.get_user(ctx.services.db, ctx.user.user_id)
    if user is None:
        raise CommandError("not_found", "account not found")
    return user


@command("account.get", rest=("GET", "/users/me"), scope=Scope.READ_PROFILE, output=OwnProfile,
         rate=Rate("reads"))
async def get_me(ctx: Context, data: Empty) -> OwnProfile:
    """Your own profile, with email and phone."""
    return OwnProfile.of(await _me(ctx), ctx.principal)


@command("account.update", input=UpdateProfileInput, rest=("PATCH", "/users/me"),
         scope=Scope.WRITE_PROFILE, output=OwnProfile,
         rate=Rate("profile_update"))
async def update_me(ctx: Context, data: UpdateProfileInput) -> OwnProfile:
    """Change profile fields (not the email: account.email.change)."""
    changes: dict[str, Any] = {name: getattr(data, name) for name in data.model_fields_set}
    try:
        user = await user_store.update_profile(ctx.services.db, ctx.user.user_id, changes)
    except UniqueViolation:
        raise taken("username") from None
    if user is None:
        raise CommandError("not_found", "account not found")
    if changes.get("is_private") is False and await approve_all_follow_requests(ctx):
        user = await _me(ctx)  # the approvals changed the follower count
    return OwnProfile.of(user, ctx.principal)


# Scope `account`, never grantable: an app must not switch a person's tracking back on.
@command("account.set_analytics_opt_out", input=AnalyticsOptOutInput,
         rest=("PUT", "/users/me/analytics_opt_out"), scope=Scope.ACCOUNT, output=OwnProfile,
         rate=Rate("profile_update"))
async def set_analytics_opt_out(ctx: Context, data: AnalyticsOptOutInput) -> OwnProfile:
    """Stop (or resume) analytics tracking of you; see docs/analytics.md, "Privacy"."""
    user = await user_store.set_analytics_opt_out(ctx.services.db, ctx.user.user_id, data.opt_out)
    if user is None:
        raise CommandError("not_found", "account not found")
    # This process answers with the new choice at once; others within the cache's TTL.
    if ctx.services.analytics is not None:
        ctx.services.analytics.opt_outs.put(user.id, user.analytics_opt_out)
    return OwnProfile.of(user, ctx.principal)


@command("account.delete", input=DeleteAccountInput, rest=("DELETE", "/users/me"),
         scope=Scope.ACCOUNT, status=204,
         rate=Rate("account_change"))
async def delete_me(ctx: Context, data: DeleteAccountInput) -> None:
    """Delete your account: needs the password; ends every session and anonymises the data."""
    services = ctx.services
    user = await _me(ctx)
    if not await check_password(ctx, user, data.password):
        raise CommandError("forbidden", "wrong password")
    async with services.db.transaction() as conn:
        await network_store.remove_user(conn, user.id)
        await clique_store.remove_user(conn, user.id)
        await user_store.anonymise_user(conn, user.id)
    await revoke_everything(services, user.id, "account_deleted")
    # Apps act for other people too: a deleted owner's apps must stop acting for them.
    await delete_owned_apps(services, user.id)


@command("account.password.change", input=ChangePasswordInput, rest=("POST", "/users/me/password"),
         scope=Scope.ACCOUNT, status=204,
         rate=Rate("account_change"))
async def change_password(ctx: Context, data: ChangePasswordInput) -> None:
    """Change your password; every other session of the account ends."""
    services = ctx.services
    user = await _me(ctx)
    if not await check_password(ctx, user, data.current_password):
        raise CommandError("forbidden", "wrong password")
    password_hash = await services.passwords.hash(data.new_password)
    async with services.db.transaction() as conn:
        await user_store.set_password_hash(conn, user.id, password_hash)
        # Securing the account also stops an email change someone else may have started.
        await user_store.clear_pending_email(conn, user.id)
        others = await session_store.revoke_user_sessions(
            conn, user.id, "password_changed", keep=ctx.user.session_id
        )
    await services.revocations.revoke(others)
    await services.realtime.end_sessions(user.id, others, "password_changed")


async def _profile(ctx: Context, user: User | None) -> UserProfile:
    if user is None:
        raise CommandError("not_found", "no such user")
    me = ctx.user.user_id
    relationship = None if user.id == me else RelationshipOut.of(
        await network_store.relationship(ctx.services.db, me, user.id, ctx.services.clock()))
    return UserProfile(**PublicProfile.of(user).model_dump(), relationship=relationship)


@command("user.get", input=UserIdInput, rest=("GET", "/users/{user_id}"), scope=Scope.READ_PROFILE,
         output=UserProfile,
         rate=Rate("reads"), activity=activities.PROFILE_VIEWED)
async def get_user(ctx: Context, data: UserIdInput) -> UserProfile:
    """A user's public profile by id, with counts and how you stand with them."""
    return await _profile(ctx, await user_store.get_user(ctx.services.db, data.user_id))


@command("user.get_by_username", input=UsernameInput, rest=("GET", "/users/by_username/{username}"),
         scope=Scope.READ_PROFILE, output=UserProfile,
         rate=Rate("reads"), activity=activities.PROFILE_VIEWED)
async def get_user_by_username(ctx: Context, data: UsernameInput) -> UserProfile:
    """A user's public profile by username (any letter case), as user.get shows it."""
    return await _profile(ctx, await user_store.get_user_by_username(ctx.services.db, data.username))


def _code_hash(user_id: uuid.UUID, code: str) -> bytes:
    return hashlib.sha256(f"{user_id}:{code}".encode()).digest()


def _e164(raw: str) -> str:
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        raise invalid("phone", "not a phone number in E.164 form (+ and country code)",
                      "phone_format") from None
    if not phonenumbers.is_valid_number(number):
        raise invalid("phone", "not a valid phone number", "phone_invalid")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@command("account.phone.start", input=PhoneInput, rest=("POST", "/users/me/phone"),
         scope=Scope.ACCOUNT, status=202, output=Accepted,
         rate=Rate("phone_code"))
async def start_phone_verification(ctx: Context, data: PhoneInput) -> Accepted:
    """Text a 6-digit code to the phone number; it is valid for 10 minutes."""
    services = ctx.services
    if not E164_RE.fullmatch(data.phone):
        raise invalid("phone", "must be E.164: + and the country code, then digits only",
                      "phone_format")
    phone = _e164(data.phone)
    code = f"{secrets.randbelow(1_000_000):06d}"
    ttl = services.settings.phone_code_ttl_s
    await verifications.start_phone_verification(
        services.db, user_id=ctx.user.user_id, phone=phone,
        code_hash=_code_hash(ctx.user.user_id, code),
        expires_at=services.clock() + timedelta(seconds=ttl),
    )
    await enqueue_sms(services, phone, "phone_code", {"code": code, "valid_minutes": ttl // 60})
    return Accepted()


@command("account.phone.verify", input=PhoneCodeInput, rest=("POST", "/users/me/phone/verify"),
         scope=Scope.ACCOUNT, output=OwnProfile,
         rate=Rate("phone_verify"))
async def verify_phone(ctx: Context, data: PhoneCodeInput) -> OwnProfile:
    """Confirm the phone number with the code from the SMS."""
    services = ctx.services
    user_id = ctx.user.user_id
    async with services.db.transaction() as conn:
        check = await verifications.check_phone_code(
            conn, user_id, _code_hash(user_id, data.code), services.settings.limits.phone_code_attempts
        )
        if check.status == "verified" and check.phone is not None:
            await user_store.set_verified_phone(conn, user_id, check.phone)
    if check.status == "none":
        raise CommandError("not_found", "no phone verification is pending; request a code first")
    if check.status == "expired":
        raise invalid("code", "the code has expired; request a new one", "code_expired")
    if check.status == "exhausted":
        raise CommandError("forbidden", "too many wrong codes; request a new one",
                           {"reason": "attempts_exhausted"})
    if check.status == "mismatch":
        raise CommandError("invalid_input", "wrong code", {
            "fields": [{"field": "code", "message": "wrong code", "type": "code_mismatch"}],
            "attempts_left": check.attempts_left,
        })
    return OwnProfile.of(await _me(ctx), ctx.principal)
