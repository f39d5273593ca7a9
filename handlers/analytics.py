"""Client-side analytics: `analytics_event.send` takes a batch of events from the registry.

Each event is checked on its own (handlers/analytics_schemas.py): a refused event is
reported by index and the rest are kept. Timestamps outside the window are clamped into it
and reported. The event id is derived from the user and the client's own id, so a retried
batch carries the same ids and the worker stores each event once. A request marked
Do-Not-Track / Sec-GPC, or from a person who opted out (account.set_analytics_opt_out),
records nothing (docs/analytics.md, "Privacy").
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from handlers.activity import ip_hash
from handlers.analytics_schemas import (
    ClientEvent,
    Refusal,
    SendEventsInput,
    SendEventsOut,
    props_model,
)
from handlers.commands import command
from handlers.context import Context
from handlers.rates import Rate
from handlers.scopes import Scope
from jobs.analytics import AnalyticsEvent
from storage import users as user_store

# Client clocks drift and batches wait offline: older events are kept, clamped to this.
PAST_WINDOW = timedelta(hours=24)
FUTURE_WINDOW = timedelta(minutes=5)
# uuid5 namespace of client event ids (fixed forever: changing it breaks de-duplication).
CLIENT_EVENT_NAMESPACE = uuid.UUID("6f1c2b1e-3b0a-5d6e-9c43-1a2f7e4d8b90")


def client_event_id(user_id: uuid.UUID, client_id: str) -> uuid.UUID:
    """The event id of a client's event: the same for every retry of the same event."""
    return uuid.uuid5(CLIENT_EVENT_NAMESPACE, f"{user_id}:{client_id}")


def clamp(at: datetime, now: datetime) -> tuple[datetime, bool]:
    """The time within [now - 24 h, now + 5 min], and whether it had to move."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    low, high = now - PAST_WINDOW, now + FUTURE_WINDOW
    bounded = min(max(at, low), high)
    return bounded, bounded != at


async def opted_out(ctx: Context, user_id: uuid.UUID) -> bool:
    """The person's opt-out, from the process's short cache or else one row read."""
    cache = None if ctx.services.analytics is None else ctx.services.analytics.opt_outs
    cached = None if cache is None else cache.get(user_id)
    if cached is None:
        cached = await user_store.analytics_opt_out(ctx.services.db, user_id)
        if cache is not None:
            cache.put(user_id, cached)
    return cached


def _error(exc: ValidationError) -> str:
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


@command("analytics_event.send", input=SendEventsInput, output=SendEventsOut,
         rest=("POST", "/analytics/events"), scope=Scope.WRITE_ANALYTICS,
         rate=Rate("analytics_events"))
async def send(ctx: Context, data: SendEventsInput) -> SendEventsOut:
    """Record a batch of client events (1-100); each is accepted or refused on its own."""
    if ctx.do_not_track:
        return SendEventsOut(accepted=0, ignored="dnt")
    user_id = ctx.user.user_id
    if await opted_out(ctx, user_id):
        return SendEventsOut(accepted=0, ignored="opt_out")
    now = ctx.services.clock()
    publisher = ctx.services.analytics
    hashed = None if publisher is None else ip_hash(publisher.ip_secret, ctx.ip, now)
    events: list[AnalyticsEvent] = []
    out = SendEventsOut(accepted=0)
    for index, raw in enumerate(data.events):
        client_id = raw.get("client_event_id")
        given = client_id if isinstance(client_id, str) else None
        try:
            event = ClientEvent.model_validate(raw)
        except ValidationError as exc:
            out.refused.append(Refusal(index=index, client_event_id=given, code="invalid_event",
                                       message=_error(exc)))
            continue
        model = props_model(event.name)
        if model is None:
            out.refused.append(Refusal(index=index, client_event_id=given, code="unknown_event",
                                       message=f"no client event named {event.name!r}"))
            continue
        try:
            props = model.model_validate(event.props).model_dump(mode="json")
        except ValidationError as exc:
            out.refused.append(Refusal(index=index, client_event_id=given, code="invalid_props",
                                       message=_error(exc)))
            continue
        occurred_at, moved = clamp(event.occurred_at, now)
        if moved:
            out.clamped.append(index)
        subject_type, subject_id = _subject(props)
        events.append(AnalyticsEvent(
            event_id=client_event_id(user_id, event.client_event_id), name=event.name,
            source="client", occurred_at=occurred_at, received_at=now, user_id=user_id,
            subject_type=subject_type, subject_id=subject_id, props=props, ip_hash=hashed,
            platform=ctx.transport))
    if publisher is not None and events:
        publisher.offer(events)
    out.accepted = len(events)
    return out


def _subject(props: dict[str, object]) -> tuple[str | None, uuid.UUID | None]:
    """What a client event is about: the first `<kind>_id` among its props."""
    for kind in ("item", "story", "slide"):
        value = props.get(f"{kind}_id")
        if isinstance(value, str):
            return kind, uuid.UUID(value)
    return None, None
