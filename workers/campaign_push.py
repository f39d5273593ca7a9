"""Push campaigns, through the notifications feature's transports (Web Push, mobile relay)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import aiohttp

from config import Settings
from config.clock import utc_now
from storage import push_subscriptions as push_store
from storage.db import Database
from workers.delivery import TransientSendError
from workers.push import (
    HttpMobilePush,
    OutboxMobilePush,
    PushMessage,
    PushTransport,
    topic_for,
    web_push_sender,
)

log = logging.getLogger(__name__)
PushOutcome = Literal["sent", "failed", "skipped"]


@dataclass
class PushSenders:
    """The transports a push campaign uses, chosen from settings as notifications does."""

    web_push: PushTransport | None
    mobile: PushTransport
    ttl_s: int
    session: aiohttp.ClientSession

    async def close(self) -> None:
        if self.web_push is not None:
            await self.web_push.close()
        await self.session.close()


def build_push_senders(settings: Settings) -> PushSenders:
    session = aiohttp.ClientSession()
    web_push = web_push_sender(settings)
    mobile: PushTransport = (
        HttpMobilePush(session, settings.mobile_push_url, settings.mobile_push_api_key)
        if settings.mobile_push_url else OutboxMobilePush(settings.outbox_dir / "push"))
    return PushSenders(web_push, mobile, settings.push_ttl_s, session)


async def push_to_user(
    db: Database, senders: PushSenders, user_id: uuid.UUID, campaign_id: uuid.UUID,
    payload: dict[str, Any],
) -> tuple[PushOutcome, str | None]:
    """Push to every live device of the user; sent if any device took it.

    Devices that answered "retry" are not tried again once another device has the
    message: a retry would reach that one a second time.
    """
    subscriptions = await push_store.live_for_users(db, [user_id])
    if not subscriptions:
        return "skipped", "no push subscription"
    message = PushMessage(payload, senders.ttl_s, topic_for(f"campaign:{campaign_id}"), "low")
    delivered, deferred, errors = 0, None, []
    for sub in subscriptions:
        transport = senders.web_push if sub.kind == "webpush" else senders.mobile
        if transport is None:
            errors.append("web push is not configured")
            continue
        result = await transport.send(sub, message)
        if result.outcome == "sent":
            delivered += 1
            await push_store.record_success(db, sub.id)
        elif result.outcome == "gone":
            await push_store.delete(db, sub.id)
            errors.append(f"subscription gone ({result.status})")
        elif result.outcome == "retry":
            until = None if result.retry_after_s is None else \
                utc_now() + timedelta(seconds=result.retry_after_s)
            await push_store.record_error(db, sub.id, result.detail, until)
            deferred = result.detail
        else:
            await push_store.record_error(db, sub.id, result.detail)
            errors.append(result.detail)
    if delivered:
        return "sent", None
    if deferred is not None:
        raise TransientSendError(deferred, provider_wide=False)
    return "failed", "; ".join(errors)[:500] or "no device took the push"
