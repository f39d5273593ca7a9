"""Server-side analytics, declared on the command: `activity=Activity("item.created", ...)`.

After a command's handler returned (its transaction committed), the dispatcher asks the
declaration for the event and offers it to the non-blocking publisher
(handlers/analytics_publisher.py). The small functions below only read the validated input
and the result: no database round trip, nothing that could slow or fail the command.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from jobs.analytics import AnalyticsEvent

# Picks an id (or props) out of (validated input, handler result); None when there is none.
Pick = Callable[[Any, Any], uuid.UUID | None]
Props = Callable[[Any, Any], dict[str, Any]]
When = Callable[[Any, Any, uuid.UUID | None], bool]


@dataclass(frozen=True)
class Activity:
    """An analytics event the command's success stands for."""

    name: str
    subject_type: str | None = None
    subject: Pick | None = None
    owner: Pick | None = None
    props: Props | None = None
    # Who acted, for commands run without a token (sign-up, login): read from the result.
    actor: Pick | None = None
    # Whether this call counts at all (viewing someone else's profile, not your own).
    when: When | None = None


def field(*path: str) -> Pick:
    """A picker reading `result.a.b` (or the input's, when the result has no such field)."""

    def pick(data: Any, result: Any) -> uuid.UUID | None:
        for source in (result, data):
            value = source
            for part in path:
                # Results are models, or plain dicts for the few handlers that build JSON.
                value = value.get(part) if isinstance(value, dict) else getattr(value, part, None)
            if isinstance(value, str):
                try:
                    value = uuid.UUID(value)
                except ValueError:
                    value = None
            if isinstance(value, uuid.UUID):
                return value
        return None

    return pick


def daily_salt(secret: str, day: date) -> bytes:
    """The day's salt: derived from the server secret and the UTC date, never stored."""
    return hmac.new(secret.encode(), f"analytics-ip:{day.isoformat()}".encode(),
                    hashlib.sha256).digest()


def ip_hash(secret: str, ip: str | None, at: datetime) -> str | None:
    """HMAC-SHA256(daily salt, ip): the same visitor hashes alike within one UTC day only."""
    if not ip:
        return None
    return hmac.new(daily_salt(secret, at.date()), ip.encode(), hashlib.sha256).hexdigest()


def server_event(
    activity: Activity, data: Any, result: Any, *, user_id: uuid.UUID | None,
    now: datetime, ip_hash_value: str | None, platform: str | None,
) -> AnalyticsEvent | None:
    """The event for one successful call, or None when the declaration says it does not count."""
    actor = user_id if user_id is not None else (
        activity.actor(data, result) if activity.actor else None)
    if activity.when is not None and not activity.when(data, result, actor):
        return None
    return AnalyticsEvent(
        event_id=uuid.uuid4(), name=activity.name, source="server", occurred_at=now,
        received_at=now, user_id=actor, subject_type=activity.subject_type,
        subject_id=activity.subject(data, result) if activity.subject else None,
        owner_id=activity.owner(data, result) if activity.owner else None,
        props=activity.props(data, result) if activity.props else {},
        ip_hash=ip_hash_value, platform=platform,
    )
