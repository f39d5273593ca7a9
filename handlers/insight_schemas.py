"""Wire models of owner insights (insight.*): every figure carries its freshness."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import BaseModel, Field, field_validator

from handlers.commands import Input


class Figure(BaseModel):
    """One number; null with suppressed=true when fewer than 5 people are behind it."""

    value: float | None
    suppressed: bool = False
    as_of: datetime = Field(description="the figure counts every event stored by then")


class ItemInsightInput(Input):
    item_id: uuid.UUID


class StoryInsightInput(Input):
    story_id: uuid.UUID


class SlideInsightInput(Input):
    slide_id: uuid.UUID


PERIODS = (7, 28, 90)


class PeriodInput(Input):
    # An int (not a Literal) so that `?days=7` from a query string is read as a number.
    days: int = Field(default=28, description="7, 28 or 90")

    @field_validator("days")
    @classmethod
    def _period(cls, value: int) -> int:
        if value not in PERIODS:
            raise ValueError("must be 7, 28 or 90")
        return value


class AccountInsightInput(PeriodInput):
    pass


class CliqueInsightInput(PeriodInput):
    clique_id: uuid.UUID


class Engagement(BaseModel):
    reactions: dict[str, Figure] = Field(description="reactions per kind (like, love, ...)")
    replies: Figure
    shares: Figure
    saves: Figure


class ItemInsightOut(BaseModel):
    item_id: uuid.UUID
    impressions: Figure
    reach: Figure = Field(description="distinct people with an impression (raw retention)")
    engagement: Engagement


class StoryInsightOut(BaseModel):
    story_id: uuid.UUID
    views: Figure
    reach: Figure
    taps_forward: Figure
    taps_back: Figure
    exits: Figure
    replies: Figure
    completion_rate: Figure = Field(description="share of viewers who completed it, 0-1")


class RetentionPoint(BaseModel):
    percent: int = Field(description="position in the video, 0-100 in steps of 10")
    viewers: Figure = Field(description="share of viewers still watching there, 0-1")


class SlideInsightOut(BaseModel):
    slide_id: uuid.UUID
    views: Figure
    average_watch_ms: Figure
    full_watch_rate: Figure
    retention: list[RetentionPoint]


class DayFigure(BaseModel):
    day: date
    value: Figure


class TopItem(BaseModel):
    item_id: uuid.UUID
    views: int = Field(description="impressions plus story and slide views over the period")


class AccountInsightOut(BaseModel):
    days: int
    follower_growth: list[DayFigure] = Field(description="new followers per UTC day")
    reach: Figure = Field(description="distinct people who saw your items (raw retention)")
    profile_visits: Figure
    top_items: list[TopItem]
    as_of: datetime


class CliqueInsightOut(BaseModel):
    clique_id: uuid.UUID
    days: int
    active_members: Figure = Field(description="members who posted, commented or replied")
    posts: list[DayFigure]
    joins: list[DayFigure]
    as_of: datetime


class InsightSubscribedOut(BaseModel):
    item_id: uuid.UUID
    insight: ItemInsightOut


class InsightUnsubscribedOut(BaseModel):
    item_id: uuid.UUID
