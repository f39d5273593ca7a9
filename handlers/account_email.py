"""The account's email address: verify it, change it (password, then a confirmed link), resend.

A change is pending until the link mailed to the new address is confirmed: until then the
account logs in, and password resets are mailed, with the old address, which is told about
the change when it starts and again when it completes. A stolen access token alone can
therefore never move the account to an address its thief controls.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from handlers.account_schemas import (
    Accepted,
    ChangeEmailInput,
    OwnProfile,
    TokenInput,
)
from handlers.auth import send_verification_email, taken
from handlers.commands import Empty, command
from handlers.context import Context
from handlers.errors import CommandError, invalid
from handlers.outbound import enqueue_email
from handlers.rates import Rate, charge
from handlers.scopes import Scope
from handlers.tokens import hash_token, new_opaque_token
from handlers.users import check_password
from storage import users as user_store
from storage import verifications
from storage.db import UniqueViolation
from storage.users import EmailSwap, User

log = logging.getLogger(__name__)

# Every mail carrying a verification link counts here, per account, whichever command sent it.
VERIFICATION_MAILS = Rate("verification_mail")


def mask_email(address: str) -> str:
    """n***@example.com: enough for the owner to recognise, too little to harvest."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"


async def _me(ctx: Context) -> User:
    user = await user_store.get_user(ctx.services.db, ctx.user.user_id)
    if user is None:
        raise CommandError("not_found", "account not found")
    return user


async def _mail_change_link(ctx: Context, user: User, new_email: str) -> None:
    """Record new_email as pending and mail it a confirmation link, all or nothing."""
    services = ctx.services
    # Checked again at confirmation: another account may take the address meanwhile.
    holder = await user_store.get_user_by_email(services.db, new_email)
    if holder is not None and holder.id != user.id:
        raise taken("email")
    await charge(ctx, VERIFICATION_MAILS, str(user.id))
    token, token_hash = new_opaque_token()
    ttl = services.settings.email_token_ttl_s
    expires_at = services.clock() + timedelta(seconds=ttl)
    base = services.settings.public_base_url
    # Queued inside the transaction: when mail cannot be queued nothing is left pending.
    async with services.db.transaction() as conn:
        await verifications.create_user_token(
            conn, user_id=user.id, purpose="email_change", token_hash=token_hash,
            expires_at=expires_at, email=new_email,
        )
        await user_store.set_pending_email(conn, user.id, new_email, expires_at)
        await enqueue_email(services, new_email, "verify_email_change", {
            "display_name": user.display_name, "link": f"{base}/verify-email?token={token}",
            "token": token, "valid_hours": ttl // 3600,
        })


@command("account.email.change", input=ChangeEmailInput, rest=("POST", "/users/me/email"),
         scope=Scope.ACCOUNT, status=202, output=OwnProfile, rate=Rate("account_change"))
async def change_email(ctx: Context, data: ChangeEmailInput) -> OwnProfile:
    """Start changing your email: needs the password; the new address confirms a mailed link."""
    services = ctx.services
    user = await _me(ctx)
    if not await check_password(ctx, user, data.current_password):
        raise CommandError("forbidden", "wrong password")
    new_email = str(data.email)
    if user.email is not None and user.email.lower() == new_email.lower():
        # Only the letter case changes: the same mailbox, nothing to confirm.
        recased = await user_store.recase_email(services.db, user.id, new_email)
        return OwnProfile.of(recased or await _me(ctx), ctx.principal)
    await _mail_change_link(ctx, user, new_email)
    if user.email is not None:
        # The owner's alarm: queued after the link so a failure never leaves a false one.
        try:
            await enqueue_email(services, user.email, "email_change_requested", {
                "display_name": user.display_name, "new_email": mask_email(new_email),
                "link": f"{services.settings.public_base_url}/reset-password",
            })
        except CommandError:
            log.warning("email change notice not queued", extra={"user_id": str(user.id)})
    return OwnProfile.of(await _me(ctx), ctx.principal)


@command("account.email.cancel", rest=("DELETE", "/users/me/email"), scope=Scope.ACCOUNT,
         output=OwnProfile, rate=Rate("account_change"))
async def cancel_email_change(ctx: Context, data: Empty) -> OwnProfile:
    """Drop your pending email change; its link stops working."""
    if not await user_store.clear_pending_email(ctx.services.db, ctx.user.user_id):
        raise CommandError("not_found", "no email change is pending")
    return OwnProfile.of(await _me(ctx), ctx.principal)


@command("auth.email.verify", input=TokenInput, rest=("POST", "/auth/email/verify"),
         auth="none", output=Accepted, rate=Rate("email_verify", per="ip"))
async def verify_email(ctx: Context, data: TokenInput) -> Accepted:
    """Confirm an email address (or an email change) with the token from the mail."""
    services = ctx.services
    swap: EmailSwap | None = None  # set when the token confirmed an email change
    async with services.db.transaction() as conn:
        consumed = await verifications.consume_email_token(conn, hash_token(data.token))
        if consumed is None or consumed.email is None:
            raise invalid("token", "invalid or expired token", "token_invalid")
        if consumed.purpose == "email_change":
            # Raising rolls the transaction back, so a refused link stays unspent.
            try:
                swap = await user_store.apply_pending_email(conn, consumed.user_id, consumed.email)
            except UniqueViolation:
                raise taken("email") from None
            if swap.status != "changed":
                raise invalid("token", "this email change was replaced, cancelled or has "
                              "expired; ask for a new one", "token_stale")
        elif not await user_store.mark_email_verified(conn, consumed.user_id, consumed.email):
            raise invalid("token", "the account's email has changed since this token was sent",
                          "token_stale")
    if swap is not None and swap.old_email is not None:
        try:
            await enqueue_email(services, swap.old_email, "email_changed", {
                "display_name": swap.display_name, "new_email": mask_email(consumed.email),
            })
        except CommandError:
            log.warning("email changed notice not queued", extra={"user_id": str(consumed.user_id)})
    return Accepted()


@command("auth.email.resend", rest=("POST", "/auth/email/resend"), scope=Scope.ACCOUNT,
         status=202, output=Accepted, rate=Rate("account_change"))
async def resend_verification(ctx: Context, data: Empty) -> Accepted:
    """Mail the link again: to the pending new address if a change waits, else the email."""
    user = await _me(ctx)
    if user.pending_email is not None:
        await _mail_change_link(ctx, user, user.pending_email)
        return Accepted()
    if user.email is None or user.email_verified_at is not None:
        raise CommandError("conflict", "the email is already verified")
    await send_verification_email(ctx, user)
    return Accepted()
