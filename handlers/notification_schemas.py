"""Wire models of notifications: command inputs and outputs, with the rules their fields follow."""

from __future__ import annotations

import uuid
from datetime import datetime, time
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, Field, model_validator

from handlers.commands import Input
from storage.notifications import Channel, Kind


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("not an IANA time zone, e.g. Europe/Paris") from None
    return value


def _naive(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError("a local time without offset, e.g. 22:00")
    return value


LocalTime = Annotated[time, AfterValidator(_naive)]


TimeZone = Annotated[str, Field(min_length=1, max_length=64, examples=["Europe/Paris"]),
                     AfterValidator(_check_timezone)]


class ListInput(Input):
    cursor: str | None = Field(default=None, pattern=r"^[0-9]{1,19}$",
                               description="next_cursor from the previous page")
    limit: int = Field(default=20, ge=1, le=50)


class SubjectOut(BaseModel):
    type: str
    id: uuid.UUID


class NotificationOut(BaseModel):
    id: uuid.UUID
    kind: Kind
    group_key: str
    actor_ids: list[uuid.UUID] = Field(description="the most recent distinct actors first (at most 10)")
    actor_count: int = Field(description="distinct actors folded into this notification")
    count: int = Field(description="events folded into this notification while it was unread")
    subject: SubjectOut | None
    data: dict[str, Any]
    title: str
    body: str
    created_at: datetime
    updated_at: datetime
    read_at: datetime | None
    cursor: str


class NotificationPage(BaseModel):
    notifications: list[NotificationOut]
    next_cursor: str | None
    unread_count: int


class MarkReadInput(Input):
    ids: list[uuid.UUID] | None = Field(default=None, min_length=1, max_length=100)
    up_to: uuid.UUID | None = Field(
        default=None, description="mark this notification and every one listed after it")

    @model_validator(mode="after")
    def _one_of(self) -> MarkReadInput:
        if (self.ids is None) == (self.up_to is None):
            raise ValueError("give ids or up_to")
        return self


class MarkReadOut(BaseModel):
    marked: list[uuid.UUID]
    unread_count: int


class UnreadOut(BaseModel):
    unread_count: int


class PreferenceChange(Input):
    kind: Kind
    channel: Channel
    enabled: bool


class PreferencesInput(Input):
    changes: list[PreferenceChange] = Field(min_length=1, max_length=len(Kind) * len(Channel))


class KindPreferences(BaseModel):
    kind: Kind
    in_app: bool = Field(description="off: nothing is made for this kind, on any channel")
    push: bool
    email: bool
    sms: bool


class QuietHoursInput(Input):
    start: LocalTime
    end: LocalTime
    timezone: TimeZone

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHoursInput:
        if self.start == self.end:
            raise ValueError("start and end must differ")
        return self


class QuietHoursOut(BaseModel):
    start: time
    end: time
    timezone: str


class PreferencesOut(BaseModel):
    preferences: list[KindPreferences]
    quiet_hours: QuietHoursOut | None = Field(
        description="no push, email or SMS in this local window; in-app notifications still arrive")
