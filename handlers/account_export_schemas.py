"""Wire models of the data export (account.export, account.analytics_event.list)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from handlers.account_schemas import OwnProfile
from handlers.commands import Input


class ExportedItemOut(BaseModel):
    id: uuid.UUID
    kind: str
    body: str | None
    parent_id: uuid.UUID | None
    visibility: str
    created_at: datetime
    edited_at: datetime | None


class ExportedEventOut(BaseModel):
    """One raw analytics event you did, as stored (docs/analytics.md, "Tables")."""

    event_id: uuid.UUID
    name: str
    source: str
    occurred_at: datetime
    received_at: datetime
    subject_type: str | None
    subject_id: uuid.UUID | None
    owner_id: uuid.UUID | None
    props: dict[str, Any]
    ip_hash: str | None = Field(description="a daily-salted hash of your IP, never the IP")
    platform: str | None


class AnalyticsEventsInput(Input):
    cursor: str | None = Field(default=None, min_length=1, max_length=200,
                               description="next_events_cursor of account.export or "
                                           "next_cursor of the previous page")


class AnalyticsEventPage(BaseModel):
    events: list[ExportedEventOut]
    next_cursor: str | None


class ExportOut(BaseModel):
    profile: OwnProfile
    items: list[ExportedItemOut] = Field(description="newest first, at most 1000")
    items_truncated: bool = Field(description="you have more items than the export carries")
    events: list[ExportedEventOut] = Field(
        description="your raw analytics events, oldest first, the first page of 1000")
    next_events_cursor: str | None = Field(
        description="more events: pass it to account.analytics_event.list")
