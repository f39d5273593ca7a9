"""Push subscriptions, one per device: Web Push (with the server's VAPID key) or FCM/APNs tokens."""

from __future__ import annotations

from config import Settings
from config.push_services import EndpointRefused, PushTargets
from config.settings import SettingsError
from config.vapid import load_vapid, vapid_public_key
from handlers.commands import Empty, command
from handlers.context import Context
from handlers.errors import invalid
from handlers.push_schemas import (
    PushConfigOut,
    SubscribeInput,
    SubscriptionList,
    SubscriptionOut,
    UnsubscribeInput,
)
from handlers.rates import Rate
from handlers.scopes import Scope
from storage import push_subscriptions as store
from storage.push_subscriptions import PushSubscription

# A user's devices beyond this many: the oldest subscriptions are dropped.
SUBSCRIPTIONS_PER_USER = 20


def _out(sub: PushSubscription) -> SubscriptionOut:
    return SubscriptionOut(id=sub.id, kind=sub.kind, endpoint=sub.endpoint,
                           token_tail=None if sub.token is None else sub.token[-6:],
                           created_at=sub.created_at, last_success_at=sub.last_success_at,
                           last_error=sub.last_error)


def public_vapid_key(settings: Settings) -> str | None:
    """The server's VAPID public key, or None when Web Push is not configured."""
    try:
        return vapid_public_key(load_vapid(settings.resolved_vapid_private_key()))
    except SettingsError:
        return None


def _check_endpoint(settings: Settings, endpoint: str) -> None:
    """Only https endpoints on a listed push service, in every mode: the server will POST there."""
    try:
        PushTargets.from_settings(settings).check_endpoint(endpoint)
    except EndpointRefused as exc:
        raise invalid("endpoint", exc.message, exc.reason) from None


@command("push.get_config", rest=("GET", "/push/config"), auth="none", output=PushConfigOut,
         rate=Rate("public_reads", per="ip"))
async def config(ctx: Context, data: Empty) -> PushConfigOut:
    """What a client needs to subscribe to push: the VAPID public key for Web Push."""
    settings = ctx.services.settings
    return PushConfigOut(vapid_public_key=public_vapid_key(settings),
                         mobile_push="http" if settings.mobile_push_url else "outbox")


@command("push.subscribe", input=SubscribeInput, rest=("POST", "/push/subscriptions"),
         scope=Scope.WRITE_NOTIFICATIONS, status=201, output=SubscriptionOut,
         rate=Rate("push_subscription"))
async def subscribe(ctx: Context, data: SubscribeInput) -> SubscriptionOut:
    """Register this device for pushes; subscribing the same endpoint or token again refreshes it."""
    settings = ctx.services.settings
    if data.kind == "webpush":
        assert data.endpoint is not None and data.keys is not None
        _check_endpoint(settings, data.endpoint)
        if public_vapid_key(settings) is None:
            raise invalid("kind", "Web Push is not configured on this server", "unsupported")
    sub = await store.subscribe(
        ctx.services.db, user_id=ctx.user.user_id, session_id=ctx.user.session_id,
        kind=data.kind, endpoint=data.endpoint,
        p256dh=None if data.keys is None else data.keys.p256dh,
        auth=None if data.keys is None else data.keys.auth, token=data.token,
        keep=SUBSCRIPTIONS_PER_USER)
    return _out(sub)


@command("push.unsubscribe", input=UnsubscribeInput, rest=("POST", "/push/unsubscribe"),
         scope=Scope.WRITE_NOTIFICATIONS, status=204,
         rate=Rate("push_subscription"))
async def unsubscribe(ctx: Context, data: UnsubscribeInput) -> None:
    """Stop pushes to a device, by its endpoint or token; unsubscribing twice is fine."""
    await store.unsubscribe(ctx.services.db, ctx.user.user_id, endpoint=data.endpoint,
                            token=data.token)


@command("push.list_subscriptions", rest=("GET", "/push/subscriptions"), scope=Scope.READ_NOTIFICATIONS,
         output=SubscriptionList,
         rate=Rate("reads"))
async def subscriptions(ctx: Context, data: Empty) -> SubscriptionList:
    """Your devices subscribed to push, newest first, with their last delivery error if any."""
    subs = await store.for_user(ctx.services.db, ctx.user.user_id)
    return SubscriptionList(subscriptions=[_out(s) for s in subs])
