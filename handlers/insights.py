"""Owner insights (issue 12): figures about your items, stories, slides, account and the
cliques you moderate, each with its freshness (`as_of`).

Only the owner reads them: someone who may see the subject but does not own it gets
`forbidden`, anyone else `not_found`, as for every hidden thing. Past days are read from
the day roll-ups, today from the live counters (storage/insights.py says where each figure
comes from). A breakdown, rate or average behind fewer than MIN_PEOPLE distinct people is
suppressed (value null, suppressed true), so no figure singles anyone out.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from handlers.clique_access import clique_view, require_rank
from handlers.commands import command
from handlers.context import Context
from handlers.errors import CommandError
from handlers.insight_schemas import (
    AccountInsightInput,
    AccountInsightOut,
    CliqueInsightInput,
    CliqueInsightOut,
    DayFigure,
    Engagement,
    Figure,
    InsightSubscribedOut,
    InsightUnsubscribedOut,
    ItemInsightInput,
    ItemInsightOut,
    RetentionPoint,
    SlideInsightInput,
    SlideInsightOut,
    StoryInsightInput,
    StoryInsightOut,
    TopItem,
)
from handlers.rates import Rate
from handlers.scopes import Scope
from storage import insights as store
from storage import items as items_store
from storage.insights import Owned

MIN_PEOPLE = 5
# Roll-ups from the day the oldest subject could exist; 2020 predates HotSpot's analytics.
EPOCH = date(2020, 1, 1)
TOP_ITEMS = 10
QUARTILES = (0, 25, 50, 75, 100)


def figure(value: float | None, people: int, as_of: datetime) -> Figure:
    """A breakdown figure: suppressed when 1-4 people are behind it (none reveals nobody)."""
    if 0 < people < MIN_PEOPLE:
        return Figure(value=None, suppressed=True, as_of=as_of)
    return Figure(value=value, as_of=as_of)


def total(value: float, as_of: datetime) -> Figure:
    return Figure(value=value, as_of=as_of)


async def _owned(ctx: Context, subject_id: uuid.UUID, kinds: tuple[str, ...],
                 what: str) -> Owned:
    """The subject if the caller owns it: forbidden if they only see it, else not_found."""
    me = ctx.user.user_id
    visible = await items_store.get_live(ctx.services.db, me, subject_id, ctx.services.clock())
    if visible is None or visible.kind not in kinds:
        raise CommandError("not_found", f"no such {what}")
    if visible.author_id != me:
        raise CommandError("forbidden", f"only the {what}'s author can read its insights",
                           {"reason": "not_author"})
    found = await store.owned_item(ctx.services.db, subject_id)
    if found is None:
        raise CommandError("not_found", f"no such {what}")
    return found


async def _count(ctx: Context, subject_id: uuid.UUID, names: tuple[str, ...],
                 now: datetime) -> dict[str, int]:
    """All-time events per name: day roll-ups before today, live counters for today."""
    db, today = ctx.services.db, now.astimezone(UTC).date()
    counts = await store.past_counts(db, subject_id, names, EPOCH, today)
    live = ctx.services.analytics_live
    if live is None:
        recent = await store.today_counts(db, subject_id, names, today)
    else:
        recent = {name: await live.count(name, subject_id, today) for name in names}
    return {name: counts.get(name, 0) + recent.get(name, 0) for name in names}


async def item_insight(ctx: Context, item: Owned, now: datetime) -> ItemInsightOut:
    db, since = ctx.services.db, item.created_at
    counts = await _count(ctx, item.id, ("item.impression", "item.shared", "item.saved"), now)
    people = await store.by_name(db, item.id, ("item.shared", "item.saved"), since)
    reactions = await store.by_prop(db, item.id, "item.reacted", "kind", since)
    replies = await store.reply_people(db, item.id)

    def engaged(name: str) -> Figure:
        group = people.get(name)
        return figure(counts[name], group.people if group else 0, now)

    return ItemInsightOut(
        item_id=item.id,
        impressions=total(counts["item.impression"], now),
        reach=total(await store.reach(db, [item.id], ["item.impression"], since), now),
        engagement=Engagement(
            reactions={g.key: figure(g.count, g.people, now) for g in reactions},
            replies=figure(replies.count, replies.people, now),
            shares=engaged("item.shared"), saves=engaged("item.saved")))


@command("insight.get_item", input=ItemInsightInput, rest=("GET", "/items/{item_id}/insights"),
         scope=Scope.READ_CONTENT, output=ItemInsightOut, rate=Rate("reads"))
async def get_item(ctx: Context, data: ItemInsightInput) -> ItemInsightOut:
    """Your item's impressions, reach and engagement by kind (its author only)."""
    item = await _owned(ctx, data.item_id, ("post", "notice", "comment", "reply", "share"), "item")
    return await item_insight(ctx, item, ctx.services.clock())


@command("insight.get_story", input=StoryInsightInput,
         rest=("GET", "/stories/{story_id}/insights"), scope=Scope.READ_CONTENT,
         output=StoryInsightOut, rate=Rate("reads"))
async def get_story(ctx: Context, data: StoryInsightInput) -> StoryInsightOut:
    """Your story's views, reach, taps, exits, replies and completion rate."""
    story = await _owned(ctx, data.story_id, ("story",), "story")
    db, now, since = ctx.services.db, ctx.services.clock(), story.created_at
    views = (await _count(ctx, story.id, ("story.viewed",), now))["story.viewed"]
    reach = await store.reach(db, [story.id], ["story.viewed"], since)
    taps = {g.key: g for g in await store.by_prop(db, story.id, "story.tap", "direction", since)}
    complete = (await store.by_name(db, story.id, ("story.complete",), since)).get("story.complete")
    replies = await store.story_replies(db, story.id)

    def tap(direction: str) -> Figure:
        group = taps.get(direction)
        return figure(group.count if group else 0, group.people if group else 0, now)

    completers = complete.people if complete else 0
    rate = None if reach == 0 else min(completers / reach, 1.0)
    return StoryInsightOut(
        story_id=story.id, views=total(views, now), reach=total(reach, now),
        taps_forward=tap("forward"), taps_back=tap("back"), exits=tap("exit"),
        replies=figure(replies.count, replies.people, now),
        completion_rate=figure(rate, reach, now))


def retention_curve(furthest: list[int]) -> list[float]:
    """Share of viewers still watching at 0, 10, ..., 100 %.

    The client reports quartiles only, so the share is known at 0/25/50/75/100 % and
    interpolated linearly between them: an estimate between quartiles, exact on them.
    """
    viewers = len(furthest)
    known = [1.0] + [sum(1 for q in furthest if q >= mark) / viewers for mark in QUARTILES[1:]]
    curve = []
    for percent in range(0, 101, 10):
        low = min(percent // 25, 3)
        share = (percent - QUARTILES[low]) / 25
        curve.append(round(known[low] + (known[low + 1] - known[low]) * share, 4))
    return curve


@command("insight.get_slide", input=SlideInsightInput,
         rest=("GET", "/slides/{slide_id}/insights"), scope=Scope.READ_CONTENT,
         output=SlideInsightOut, rate=Rate("reads"))
async def get_slide(ctx: Context, data: SlideInsightInput) -> SlideInsightOut:
    """Your slide's views, average watch time, full-watch rate and retention curve."""
    slide = await _owned(ctx, data.slide_id, ("slide",), "slide")
    now = ctx.services.clock()
    views = (await _count(ctx, slide.id, ("slide.viewed",), now))["slide.viewed"]
    watches = await store.slide_watches(ctx.services.db, slide.id, slide.created_at)
    people = len(watches)
    curve = retention_curve([w.quartile for w in watches]) if watches else [None] * 11
    average = sum(w.watch_ms for w in watches) / people if people else None
    full = sum(1 for w in watches if w.quartile == 100) / people if people else None
    return SlideInsightOut(
        slide_id=slide.id, views=total(views, now),
        average_watch_ms=figure(average, people, now),
        full_watch_rate=figure(full, people, now),
        retention=[RetentionPoint(percent=p * 10, viewers=figure(v, people, now))
                   for p, v in enumerate(curve)])


def _days(now: datetime, days: int) -> list[date]:
    today = now.astimezone(UTC).date()
    return [today - timedelta(days=n) for n in range(days - 1, -1, -1)]


@command("insight.get_account", input=AccountInsightInput,
         rest=("GET", "/users/me/insights"), scope=Scope.READ_PROFILE,
         output=AccountInsightOut, rate=Rate("reads"))
async def get_account(ctx: Context, data: AccountInsightInput) -> AccountInsightOut:
    """Your follower growth per day, reach, profile visits and top items (7, 28 or 90 days)."""
    db, me, now = ctx.services.db, ctx.user.user_id, ctx.services.clock()
    days = _days(now, data.days)
    since = datetime.combine(days[0], time(), tzinfo=UTC)
    growth = await store.followers_per_day(db, me, days[0])
    visits = await store.past_counts(db, me, ["profile.viewed"], days[0], days[-1])
    live = ctx.services.analytics_live
    today = (await live.count("profile.viewed", me, days[-1]) if live is not None else
             (await store.today_counts(db, me, ["profile.viewed"], days[-1])).get(
                 "profile.viewed", 0))
    items = await store.item_ids_of(db, me)
    reach = await store.reach(db, items, ["item.impression", "story.viewed", "slide.viewed"],
                              since)
    top = await store.top_items(db, me, days[0], TOP_ITEMS)
    return AccountInsightOut(
        days=data.days,
        follower_growth=[DayFigure(day=d, value=figure(growth.get(d, 0), growth.get(d, 0), now))
                         for d in days],
        reach=total(reach, now),
        profile_visits=total(visits.get("profile.viewed", 0) + today, now),
        top_items=[TopItem(item_id=i, views=n) for i, n in top], as_of=now)


@command("insight.get_clique", input=CliqueInsightInput,
         rest=("GET", "/cliques/{clique_id}/insights"), scope=Scope.READ_CLIQUES,
         output=CliqueInsightOut, rate=Rate("reads"))
async def get_clique(ctx: Context, data: CliqueInsightInput) -> CliqueInsightOut:
    """A clique's active members, posts and joins per day (its moderators and above)."""
    require_rank((await clique_view(ctx, data.clique_id)).viewer, "moderator")
    db, now = ctx.services.db, ctx.services.clock()
    days = _days(now, data.days)
    rows = await store.clique_days(db, data.clique_id, days[0])
    active = await store.clique_active_members(db, data.clique_id, days[0])
    return CliqueInsightOut(
        clique_id=data.clique_id, days=data.days, active_members=total(active, now),
        posts=[DayFigure(day=r.day, value=total(r.posts, now)) for r in rows],
        joins=[DayFigure(day=r.day, value=figure(r.joins, r.joins, now)) for r in rows],
        as_of=now)


# -- live --------------------------------------------------------------------------------


@command("insight.subscribe", input=ItemInsightInput, scope=Scope.READ_CONTENT,
         output=InsightSubscribedOut, rate=Rate("item_subscribe"), socket_only=True)
async def subscribe(ctx: Context, data: ItemInsightInput) -> InsightSubscribedOut:
    """Receive insight.updated for your item on this connection, at most once a second."""
    if ctx.sid is None or ctx.services.insight_live is None:
        raise CommandError("invalid_input", "insight.subscribe needs a Socket.IO connection")
    item = await _owned(ctx, data.item_id, ("post", "notice", "comment", "reply", "share"), "item")
    first = await item_insight(ctx, item, ctx.services.clock())

    async def snapshot() -> dict[str, Any]:
        fresh = await item_insight(ctx, item, ctx.services.clock())
        return fresh.model_dump(mode="json")

    await ctx.services.insight_live.subscribe(ctx.sid, item.id, snapshot,
                                              first.model_dump(mode="json"))
    return InsightSubscribedOut(item_id=item.id, insight=first)


@command("insight.unsubscribe", input=ItemInsightInput, scope=Scope.READ_CONTENT,
         output=InsightUnsubscribedOut, rate=Rate("item_unsubscribe"), socket_only=True)
async def unsubscribe(ctx: Context, data: ItemInsightInput) -> InsightUnsubscribedOut:
    """Stop insight.updated for an item on this connection (not watching: no change)."""
    if ctx.sid is None or ctx.services.insight_live is None:
        raise CommandError("invalid_input", "insight.unsubscribe needs a Socket.IO connection")
    await ctx.services.insight_live.unsubscribe(ctx.sid, data.item_id)
    return InsightUnsubscribedOut(item_id=data.item_id)
