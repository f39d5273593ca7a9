"""Which channels a notification reaches: the recipient's preferences and quiet hours.

Preferences are per kind and channel (in_app, push, email, sms), with the defaults of
storage.notifications.default_enabled; quiet hours hold push, email and SMS, never the
in-app notification.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from zoneinfo import ZoneInfoNotFoundError

from storage import notifications as store
from storage.db import Database
from storage.notifications import Notification

Preferences = dict[uuid.UUID, dict[tuple[str, str], bool]]


def enabled(prefs: dict[tuple[str, str], bool], kind: str, channel: str) -> bool:
    """Whether one user wants this kind on this channel."""
    return prefs.get((kind, channel), store.default_enabled(kind, channel))


async def awake(db: Database, now: datetime, made: list[Notification]) -> list[Notification]:
    """Those of the notifications whose recipient is not in quiet hours now."""
    if not made:
        return []
    quiet = await store.quiet_hours(db, [n.user_id for n in made])
    result = []
    for n in made:
        hours = quiet.get(n.user_id)
        try:
            hushed = hours is not None and hours.covers(now)
        except (ZoneInfoNotFoundError, ValueError):
            # A time zone this system does not know: better a push than none at all.
            hushed = False
        if not hushed:
            result.append(n)
    return result
