"""The analytics queue: activity events, from commands (server) and from clients.

Job type (workers/analytics.py consumes it):

- analytics.events {events: [AnalyticsEvent.to_json()]}: a batch of events, published after
  the command that caused them committed (never inside its transaction, never failing it),
  or accepted from a client batch (`analytics.track`, `POST /v1/analytics/events`).

An event is identified by `event_id` (a uuid; for client events derived from the client's
own id and the user, so a retried batch de-duplicates): the worker stores each id once.
IP addresses never travel here: `ip_hash` is a daily-salted hash at most.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from jobs.queue import new_job

QUEUE = "analytics"
EVENTS_JOB = "analytics.events"
# One job carries at most this many events; a larger batch is split by events_jobs().
EVENTS_PER_JOB = 500

Source = Literal["server", "client"]


@dataclass(frozen=True)
class AnalyticsEvent:
    """One activity: who did what, when, to which subject, with typed properties."""

    event_id: uuid.UUID
    name: str
    source: Source
    occurred_at: datetime
    received_at: datetime
    user_id: uuid.UUID | None = None
    # What the event is about: ("item", id), ("user", id), ("clique", id), ...
    subject_type: str | None = None
    subject_id: uuid.UUID | None = None
    # The subject's owner (an item's author, a profile's user): whose insights it feeds.
    owner_id: uuid.UUID | None = None
    props: dict[str, Any] = field(default_factory=dict)
    # A hash of the client's IP with a salt that changes every day; for unique counts only.
    ip_hash: str | None = None
    platform: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": str(self.event_id), "name": self.name, "source": self.source,
            "occurred_at": self.occurred_at.isoformat(),
            "received_at": self.received_at.isoformat(),
            "user_id": None if self.user_id is None else str(self.user_id),
            "subject_type": self.subject_type,
            "subject_id": None if self.subject_id is None else str(self.subject_id),
            "owner_id": None if self.owner_id is None else str(self.owner_id),
            "props": self.props, "ip_hash": self.ip_hash, "platform": self.platform,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> AnalyticsEvent:
        def opt_uuid(key: str) -> uuid.UUID | None:
            value = raw.get(key)
            return None if value is None else uuid.UUID(value)

        return cls(
            event_id=uuid.UUID(raw["event_id"]), name=raw["name"], source=raw["source"],
            occurred_at=datetime.fromisoformat(raw["occurred_at"]),
            received_at=datetime.fromisoformat(raw["received_at"]),
            user_id=opt_uuid("user_id"), subject_type=raw.get("subject_type"),
            subject_id=opt_uuid("subject_id"), owner_id=opt_uuid("owner_id"),
            props=dict(raw.get("props") or {}), ip_hash=raw.get("ip_hash"),
            platform=raw.get("platform"),
        )


def events_jobs(events: list[AnalyticsEvent]) -> list[dict[str, Any]]:
    """The jobs carrying these events, EVENTS_PER_JOB at most each."""
    return [new_job(EVENTS_JOB, events=[e.to_json() for e in events[i:i + EVENTS_PER_JOB]])
            for i in range(0, len(events), EVENTS_PER_JOB)]
