"""Wire models of the admin analytics reports (`analytics_report.*`, docs/analytics.md#reports)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from handlers.commands import Input

# Roll-ups are kept forever, so activity may look back a year; the raw-event reports stop
# at the retention anyway, a longer window only adds days without figures.
MAX_DAYS = 366
MAX_WEEKS = 26


class DaysInput(Input):
    days: int = Field(default=30, ge=1, le=MAX_DAYS,
                      description="UTC days to report, ending today")


class WeeksInput(Input):
    weeks: int = Field(default=8, ge=1, le=MAX_WEEKS,
                       description="weekly sign-up cohorts to report, ending this week")


class Freshness(BaseModel):
    # The end of the minute holding the newest stored event: events after it are still
    # in the queue or the worker's batch. None when nothing was ever stored.
    as_of: datetime | None
    computed_at: datetime
    # The oldest UTC day whose raw events are kept; figures about distinct people need
    # them, so they are null for older days.
    raw_since: date


class DayActive(BaseModel):
    day: date
    # Null before raw_since: only the roll-ups remain, and they hold no user.
    users: int | None


class ActiveUsersReport(Freshness):
    days: list[DayActive]
    dau: int | None = Field(description="distinct users today (UTC)")
    wau: int | None = Field(description="distinct users over the last 7 UTC days")
    mau: int | None = Field(description="distinct users over the last 30 UTC days")


class CohortRow(BaseModel):
    week: date = Field(description="the Monday (UTC) of the sign-up week")
    size: int
    # retained[k] and rates[k]: members active in the k-th week after signing up
    # (k = 0 is the sign-up week itself, always the whole cohort).
    retained: list[int]
    rates: list[float]


class RetentionReport(Freshness):
    cohorts: list[CohortRow]


class FunnelStep(BaseModel):
    step: str
    users: int
    # Share of the cohort that signed up (0 when nobody did).
    rate: float


class SignupFunnelReport(Freshness):
    first_day: date
    steps: list[FunnelStep]


class DayActivity(BaseModel):
    day: date
    signups: int
    messages: int
    items: int


class ActivityReport(Freshness):
    days: list[DayActivity]
