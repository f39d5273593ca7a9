"""Per-user analytics opt-out, as analytics_event.send sees it: a short-lived cache.

The database column (users.analytics_opt_out) is the truth, and the analytics worker
applies it to every event it stores (storage/analytics.py), so a stale cache never lets
an opted-out person's client event in. The cache only spares analytics_event.send a
database read per batch: an entry lives TTL_S; the process that records a change
updates its entry at once, other processes see it within TTL_S.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable

# How long another process may answer with the old choice (its events are dropped anyway).
TTL_S = 30.0
# Bounded so a process serving many people keeps a fixed amount of memory.
MAX_ENTRIES = 50_000


class OptOutCache:
    """user id -> (opted out, expires at), least recently stored first."""

    def __init__(self, ttl_s: float = TTL_S, max_entries: int = MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[uuid.UUID, tuple[bool, float]] = OrderedDict()

    def get(self, user_id: uuid.UUID) -> bool | None:
        """The cached choice, or None when there is none or it is too old."""
        entry = self._entries.get(user_id)
        if entry is None:
            return None
        if entry[1] <= self.clock():
            del self._entries[user_id]
            return None
        return entry[0]

    def put(self, user_id: uuid.UUID, opted_out: bool) -> None:
        self._entries.pop(user_id, None)
        self._entries[user_id] = (opted_out, self.clock() + self.ttl_s)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
