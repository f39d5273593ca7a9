"""Wire models of campaigns: command inputs and outputs, with the rules their fields follow."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from handlers.commands import Input
from handlers.roles import Role


class Audience(Input):
    """Who gets the campaign; the conditions combine with AND. all=true means everyone."""

    inactive_days: int | None = Field(default=None, ge=1, le=3650,
                                      description="not connected for at least this many days")
    verified_email_only: bool = False
    role: Role | None = None
    all: bool = False

    @model_validator(mode="after")
    def _chosen(self) -> Audience:
        if not self.all and self.inactive_days is None and self.role is None \
                and not self.verified_email_only:
            raise ValueError("choose an audience condition, or all=true for every user")
        return self


class CampaignCreateInput(Input):
    name: str = Field(min_length=1, max_length=200)
    channel: Literal["email", "sms", "push"]
    template: str | None = Field(default=None, min_length=1, max_length=64,
                                 description="a named email template, or SMS template (sms, push)")
    subject: str | None = Field(default=None, min_length=1, max_length=200,
                                description="email: the subject; push: the title")
    text: str | None = Field(default=None, min_length=1, max_length=10_000)
    html: str | None = Field(default=None, min_length=1, max_length=100_000)
    audience: Audience

    @model_validator(mode="after")
    def _content(self) -> CampaignCreateInput:
        # A push's subject is its title, which goes with a template too.
        inline = self.text is not None or self.html is not None or (
            self.subject is not None and self.channel != "push")
        if self.template is not None and inline:
            raise ValueError("give a template or subject/text/html, not both")
        if self.template is None and self.text is None:
            raise ValueError("give a template, or the text (and for email a subject)")
        return self


class CampaignIdInput(Input):
    campaign_id: uuid.UUID


class CampaignListInput(Input):
    limit: int = Field(default=20, ge=1, le=100)
    before: datetime | None = Field(default=None, description="created_at of the last one seen")


class CampaignInfo(BaseModel):
    id: str
    name: str
    channel: str
    template: str | None
    subject: str | None
    audience: dict[str, Any]
    status: Literal["draft", "running", "paused", "done"]
    total: int
    pending: int
    sent: int
    failed: int
    skipped: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    created_by: str | None
    started_by: str | None


class CampaignList(BaseModel):
    campaigns: list[CampaignInfo]
    next_before: datetime | None
