"""Admin reports on the whole service: active users, retention cohorts, sign-up funnel, activity.

Each report is a plain function of (database, now, retention) so the `hotspot analytics
report` CLI prints the very figures the commands answer. Distinct people come from the raw
events, which exist only within the retention; per-day counts come from the day roll-ups,
kept forever (storage/analytics_reports.py, docs/analytics.md#reports).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from handlers.analytics_admin_schemas import (
    ActiveUsersReport,
    ActivityReport,
    CohortRow,
    DayActive,
    DayActivity,
    DaysInput,
    Freshness,
    FunnelStep,
    RetentionReport,
    SignupFunnelReport,
    WeeksInput,
)
from handlers.commands import command
from handlers.context import Context
from handlers.rates import Rate
from handlers.scopes import Scope
from storage import analytics_reports as store
from storage.analytics import utc_day
from storage.db import Database

WEEK, MONTH = 7, 30


def _freshness(newest: datetime | None, now: datetime, retention_days: int) -> Freshness:
    as_of = None if newest is None else min(newest + timedelta(minutes=1), now)
    return Freshness(as_of=as_of, computed_at=now,
                     raw_since=utc_day(now) - timedelta(days=retention_days))


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


async def active_users_report(db: Database, now: datetime, retention_days: int,
                              days: int) -> ActiveUsersReport:
    fresh = _freshness(await store.newest_event_minute(db), now, retention_days)
    today = utc_day(now)
    first = today - timedelta(days=days - 1)
    daily = await store.daily_active_users(db, max(first, fresh.raw_since), today)

    async def window(length: int) -> int | None:
        start = today - timedelta(days=length - 1)
        # A window reaching past the retention would undercount: say nothing instead.
        return None if start < fresh.raw_since else await store.active_users(db, start, today)

    rows = [DayActive(day=day, users=None if day < fresh.raw_since else daily.get(day, 0))
            for day in _days(first, today)]
    return ActiveUsersReport(**fresh.model_dump(), days=rows, dau=daily.get(today, 0),
                             wau=await window(WEEK), mau=await window(MONTH))


async def retention_report(db: Database, now: datetime, retention_days: int,
                           weeks: int) -> RetentionReport:
    fresh = _freshness(await store.newest_event_minute(db), now, retention_days)
    today = utc_day(now)
    first_week = store.week_start(today) - timedelta(weeks=weeks - 1)
    # A cohort whose sign-up week began before the retention has lost its first events.
    first_week = max(first_week, store.week_start(fresh.raw_since + timedelta(days=6)))
    cohorts = await store.signup_cohorts(db, first_week, today) if first_week <= today else []
    return RetentionReport(**fresh.model_dump(), cohorts=[
        CohortRow(week=c.week, size=c.size, retained=c.retained,
                  rates=[_rate(n, c.size) for n in c.retained]) for c in cohorts])


async def signup_funnel_report(db: Database, now: datetime, retention_days: int,
                               days: int) -> SignupFunnelReport:
    fresh = _freshness(await store.newest_event_minute(db), now, retention_days)
    today = utc_day(now)
    first = max(today - timedelta(days=days - 1), fresh.raw_since)
    counts = await store.signup_funnel(db, first, today)
    steps = [("signed_up", counts.signed_up), ("email_verified", counts.email_verified),
             ("item_or_message", counts.item_or_message), ("item_created", counts.item_created),
             ("message_sent", counts.message_sent)]
    return SignupFunnelReport(**fresh.model_dump(), first_day=first, steps=[
        FunnelStep(step=name, users=n, rate=_rate(n, counts.signed_up)) for name, n in steps])


async def activity_report(db: Database, now: datetime, retention_days: int,
                          days: int) -> ActivityReport:
    fresh = _freshness(await store.newest_event_minute(db), now, retention_days)
    today = utc_day(now)
    first = today - timedelta(days=days - 1)
    counts = await store.daily_counts(
        db, (store.SIGNED_UP, store.MESSAGE_SENT, store.ITEM_CREATED), first, today)
    return ActivityReport(**fresh.model_dump(), days=[
        DayActivity(day=day, signups=counts.get((day, store.SIGNED_UP), 0),
                    messages=counts.get((day, store.MESSAGE_SENT), 0),
                    items=counts.get((day, store.ITEM_CREATED), 0))
        for day in _days(first, today)])


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _retention(ctx: Context) -> int:
    return ctx.services.settings.analytics_retention_days


@command("analytics_report.get_active_users", input=DaysInput, output=ActiveUsersReport,
         rest=("GET", "/analytics_reports/active_users"), scope=Scope.ADMIN, role="admin",
         rate=Rate("reads"))
async def get_active_users(ctx: Context, data: DaysInput) -> ActiveUsersReport:
    """Distinct active users per UTC day, and DAU, WAU, MAU, within the raw retention (admin)."""
    return await active_users_report(ctx.services.db, ctx.services.clock(), _retention(ctx),
                                     data.days)


@command("analytics_report.get_retention", input=WeeksInput, output=RetentionReport,
         rest=("GET", "/analytics_reports/retention"), scope=Scope.ADMIN, role="admin",
         rate=Rate("reads"))
async def get_retention(ctx: Context, data: WeeksInput) -> RetentionReport:
    """Weekly sign-up cohorts and how many of each were active in each later week (admin)."""
    return await retention_report(ctx.services.db, ctx.services.clock(), _retention(ctx),
                                  data.weeks)


@command("analytics_report.get_signup_funnel", input=DaysInput, output=SignupFunnelReport,
         rest=("GET", "/analytics_reports/signup_funnel"), scope=Scope.ADMIN, role="admin",
         rate=Rate("reads"))
async def get_signup_funnel(ctx: Context, data: DaysInput) -> SignupFunnelReport:
    """Who signed up in the window, and how many verified an email, posted or messaged (admin)."""
    return await signup_funnel_report(ctx.services.db, ctx.services.clock(), _retention(ctx),
                                      data.days)


@command("analytics_report.get_activity", input=DaysInput, output=ActivityReport,
         rest=("GET", "/analytics_reports/activity"), scope=Scope.ADMIN, role="admin",
         rate=Rate("reads"))
async def get_activity(ctx: Context, data: DaysInput) -> ActivityReport:
    """Sign-ups, messages sent and items created per UTC day, from the day roll-ups (admin)."""
    return await activity_report(ctx.services.db, ctx.services.clock(), _retention(ctx),
                                 data.days)
