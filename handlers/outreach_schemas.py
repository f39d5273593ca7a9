"""Wire models of outreach: command inputs and outputs, with the rules their fields follow."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from handlers.commands import Input

Channel = Literal["email", "sms", "push"]


class TestSendInput(Input):
    channel: Channel
    to: str = Field(min_length=3, max_length=254,
                    description="email: an address; sms: an E.164 number; push: a username")
    template: str = Field(min_length=1, max_length=64,
                          description="an email template, or an SMS template (sms, push)")


class TestSendMeInput(Input):
    channel: Channel


class Queued(BaseModel):
    accepted: bool = True
    job_id: str


class UnsubscribeInput(Input):
    token: str = Field(min_length=10, max_length=200)


class Unsubscribed(BaseModel):
    channel: str
    unsubscribed: bool = True


class Subscriptions(BaseModel):
    """Whether you receive campaigns on each channel; transactional mail always goes out."""

    email: bool
    sms: bool
    push: bool


class SubscriptionInput(Input):
    channel: Channel
    subscribed: bool
