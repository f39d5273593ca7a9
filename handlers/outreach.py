"""Outreach for people: test sends, unsubscribe links, and your own channel subscriptions."""

from __future__ import annotations

import uuid

import phonenumbers
from pydantic import TypeAdapter, ValidationError

from handlers.account_schemas import Email
from handlers.commands import Empty, command
from handlers.context import Context
from handlers.errors import CommandError, invalid
from handlers.outbound import enqueue_email, enqueue_push, enqueue_sms
from handlers.outreach_schemas import (
    Queued,
    SubscriptionInput,
    Subscriptions,
    TestSendInput,
    TestSendMeInput,
    Unsubscribed,
    UnsubscribeInput,
)
from handlers.rates import Rate
from handlers.scopes import Scope
from jobs.templates import email_templates, sample_params, sms_templates
from jobs.unsubscribe import CHANNELS, verify
from storage import outreach as store
from storage import push_subscriptions as push_store
from storage import users as user_store


def _phone(raw: str) -> str:
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        raise invalid("to", "not a phone number in E.164 form", "phone_format") from None
    if not raw.startswith("+") or not phonenumbers.is_valid_number(number):
        raise invalid("to", "not a valid E.164 phone number", "phone_invalid")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _email(raw: str) -> str:
    try:
        return str(TypeAdapter(Email).validate_python(raw))
    except ValidationError:
        raise invalid("to", "not a valid email address", "email_format") from None


@command("outreach.test.send", input=TestSendInput, rest=("POST", "/outreach/test_send"),
         scope=Scope.ADMIN, status=202, output=Queued,
         role="admin", rate=Rate("test_send_admin"))
async def test_send(ctx: Context, data: TestSendInput) -> Queued:
    """Send any template, filled with sample values, to any address (admin, rate limited)."""
    services = ctx.services
    known = email_templates() if data.channel == "email" else sms_templates()
    if data.template not in known:
        raise invalid("template", f"no {data.channel} template {data.template!r}; known: "
                                  f"{sorted(known)}", "unknown_template")
    if data.channel == "email":
        to, enqueue = _email(data.to), enqueue_email
    elif data.channel == "sms":
        to, enqueue = _phone(data.to), enqueue_sms
    else:
        to, enqueue = str(await _push_target(ctx, data.to)), enqueue_push
    params = sample_params(services.settings.public_base_url)
    return Queued(job_id=await enqueue(services, to, data.template, params, test=True))


async def _push_target(ctx: Context, username: str) -> uuid.UUID:
    user = await user_store.get_user_by_username(ctx.services.db, username)
    if user is None:
        raise invalid("to", "for push, give the username of an existing user", "unknown_user")
    await _require_devices(ctx, user.id)
    return user.id


async def _require_devices(ctx: Context, user_id: uuid.UUID) -> None:
    if not await push_store.live_for_users(ctx.services.db, [user_id]):
        raise CommandError("conflict", "no device of that account is subscribed to push",
                           {"reason": "no_push_subscription"})


@command("outreach.test.send_me", input=TestSendMeInput, rest=("POST", "/outreach/test_send/me"),
         scope=Scope.ACCOUNT, status=202, output=Queued,
         rate=Rate("test_send"))
async def test_send_me(ctx: Context, data: TestSendMeInput) -> Queued:
    """Send yourself a test email or SMS at your verified address (rate limited)."""
    services = ctx.services
    user = await user_store.get_user(services.db, ctx.user.user_id)
    if user is None:
        raise CommandError("not_found", "account not found")
    if data.channel == "email" and (user.email is None or user.email_verified_at is None):
        raise CommandError("conflict", "verify your email address first", {"reason": "unverified"})
    if data.channel == "sms" and (user.phone is None or user.phone_verified_at is None):
        raise CommandError("conflict", "verify a phone number first", {"reason": "unverified"})
    if data.channel == "push":
        await _require_devices(ctx, user.id)
    params = {"display_name": user.display_name}
    if data.channel == "email":
        assert user.email is not None
        job_id = await enqueue_email(services, user.email, "test_message", params, test=True)
    elif data.channel == "sms":
        assert user.phone is not None
        job_id = await enqueue_sms(services, user.phone, "test_message", params, test=True)
    else:
        job_id = await enqueue_push(services, str(user.id), "test_message", params, test=True)
    return Queued(job_id=job_id)


async def unsubscribe_with_token(ctx: Context, token: str) -> Unsubscribed:
    """Record the opt-out a signed token stands for; shared by the command and the link."""
    opt_out = verify(ctx.services.settings.resolved_unsubscribe_secret(), token)
    if opt_out is None:
        raise invalid("token", "invalid unsubscribe link", "token_invalid")
    await store.opt_out(ctx.services.db, opt_out.user_id, opt_out.channel)
    return Unsubscribed(channel=opt_out.channel)


@command("outreach.unsubscribe", input=UnsubscribeInput, auth="none", output=Unsubscribed,
         rest=("POST", "/outreach/unsubscribe"), custom_route=True,
         rate=Rate("unsubscribe", per="ip"))
async def unsubscribe(ctx: Context, data: UnsubscribeInput) -> Unsubscribed:
    """Opt out of campaigns on one channel with the token from a message; no login needed."""
    return await unsubscribe_with_token(ctx, data.token)


@command("outreach.get_subscriptions", rest=("GET", "/outreach/subscriptions"),
         scope=Scope.READ_PROFILE, output=Subscriptions,
         rate=Rate("reads"))
async def get_subscriptions(ctx: Context, data: Empty) -> Subscriptions:
    """Which channels you get campaigns on."""
    out = await store.opted_out_channels(ctx.services.db, ctx.user.user_id)
    return Subscriptions(**{channel: channel not in out for channel in CHANNELS})


@command("outreach.set_subscriptions", input=SubscriptionInput,
         rest=("PATCH", "/outreach/subscriptions"), scope=Scope.WRITE_PROFILE, output=Subscriptions,
         rate=Rate("outreach_subscriptions"))
async def set_subscription(ctx: Context, data: SubscriptionInput) -> Subscriptions:
    """Subscribe to or opt out of campaigns on one channel."""
    db, user_id = ctx.services.db, ctx.user.user_id
    if data.subscribed:
        await store.opt_in(db, user_id, data.channel)
    else:
        await store.opt_out(db, user_id, data.channel)
    return await get_subscriptions(ctx, Empty())
