"""Wire models of client-side analytics: the event registry and the batch command.

A client event's `name` picks its props model below; unknown names and props outside a
model (extra fields, wrong types, out of bounds) are refused per event, the rest of the
batch is kept (docs/analytics.md, "Client events").
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from handlers.commands import Input

# Bounds on what one client event may carry.
MAX_MS = 24 * 3600 * 1000
SCREEN_MAX = 64
BATCH_MAX = 100


class Props(BaseModel):
    """Base of every event's props: unknown properties are refused."""

    model_config = ConfigDict(extra="forbid")


class ItemImpression(Props):
    item_id: uuid.UUID
    # An impression is at least one second in the viewport.
    visible_ms: int = Field(ge=1000, le=MAX_MS)


class StoryTap(Props):
    story_id: uuid.UUID
    direction: Literal["forward", "back", "exit"]


class StoryComplete(Props):
    story_id: uuid.UUID


class SlideWatch(Props):
    slide_id: uuid.UUID
    quartile: Literal[25, 50, 75, 100]
    watch_ms: int = Field(ge=0, le=MAX_MS)


class ScreenView(Props):
    # A screen name the client chooses (`feed`, `profile`, `story_viewer`, ...): snake_case,
    # bounded, so it can never carry free text.
    screen: str = Field(min_length=1, max_length=SCREEN_MAX, pattern=r"^[a-z][a-z0-9_]*$")


class SessionStart(Props):
    pass


class SessionEnd(Props):
    duration_ms: int = Field(ge=0, le=MAX_MS)


class LinkClick(Props):
    item_id: uuid.UUID
    # The host only: a full URL (its path and query) may carry tokens or personal data.
    url_host: str = Field(min_length=1, max_length=253)

    @field_validator("url_host")
    @classmethod
    def _host_only(cls, value: str) -> str:
        host = urlsplit(value if "//" in value else f"//{value}").hostname
        if host is None or host != value.lower():
            raise ValueError("must be a host name only (no scheme, path or query)")
        return host


# The registry: every client event name the server accepts, with its props model.
REGISTRY: tuple[tuple[str, type[Props]], ...] = (
    ("item.impression", ItemImpression), ("story.tap", StoryTap),
    ("story.complete", StoryComplete), ("slide.watch", SlideWatch),
    ("screen.view", ScreenView), ("session.start", SessionStart),
    ("session.end", SessionEnd), ("link.click", LinkClick),
)


def props_model(name: str) -> type[Props] | None:
    return next((model for known, model in REGISTRY if known == name), None)


class ClientEvent(BaseModel):
    """One event as the client sends it; props are checked against the registry separately."""

    model_config = ConfigDict(extra="forbid")

    client_event_id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=64)
    occurred_at: datetime
    props: dict[str, Any] = Field(default_factory=dict)


class SendEventsInput(Input):
    events: list[dict[str, Any]] = Field(min_length=1, max_length=BATCH_MAX)


class Refusal(BaseModel):
    index: int
    client_event_id: str | None
    code: Literal["unknown_event", "invalid_props", "invalid_event"]
    message: str


class SendEventsOut(BaseModel):
    accepted: int
    # Events whose timestamp fell outside the window and were clamped into it (by index).
    clamped: list[int] = Field(default_factory=list)
    refused: list[Refusal] = Field(default_factory=list)
    # Why nothing was recorded: the request asked not to be tracked, or the user opted out.
    ignored: Literal["dnt", "opt_out"] | None = None
