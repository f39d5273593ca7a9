"""Rate limits by name: how many events one key may count in one window.

Commands name the rates they are counted against (`rate=Rate("message_send")` on the
command); the numbers live here, one setting each: `HOTSPOT_RATE_MESSAGE_SEND=20/10` means
20 per 10-second window. docs/limits.md lists every one with what it counts.
"""

from __future__ import annotations

import re
from typing import Annotated, NamedTuple

from pydantic import BeforeValidator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SPEC_PATTERN = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*s?\s*$")


class RateSpec(NamedTuple):
    """At most `limit` events per `window_s` seconds (a fixed window from the first event)."""

    limit: int
    window_s: int

    def __str__(self) -> str:
        return f"{self.limit}/{self.window_s}s"


def _parse(value: object) -> object:
    # "20/10" or "20/10s" from the environment; a (count, window) pair from code.
    if isinstance(value, str):
        match = SPEC_PATTERN.match(value)
        if match is None:
            raise ValueError("must be COUNT/SECONDS, e.g. 20/10")
        value = (int(match.group(1)), int(match.group(2)))
    if isinstance(value, tuple | list) and len(value) == 2:
        count, window_s = int(value[0]), int(value[1])
        if count < 1 or window_s < 1:
            raise ValueError("count and window must both be at least 1")
        return RateSpec(count, window_s)
    raise ValueError("must be COUNT/SECONDS, e.g. 20/10")


RateValue = Annotated[RateSpec, NoDecode, BeforeValidator(_parse)]


class Rates(BaseSettings):
    """Every named rate limit; a field name is the name commands declare."""

    model_config = SettingsConfigDict(env_prefix="HOTSPOT_RATE_", extra="ignore")

    # Every read command, per user; reads that need no token, per IP.
    reads: RateValue = RateSpec(1200, 60)
    public_reads: RateValue = RateSpec(600, 60)

    # Accounts and sessions.
    signup: RateValue = RateSpec(20, 3600)
    login: RateValue = RateSpec(60, 60)
    token_refresh: RateValue = RateSpec(120, 60)
    email_verify: RateValue = RateSpec(30, 3600)
    # Failure counters: only failures count, and at the limit every attempt is refused.
    login_failures_ip: RateValue = RateSpec(50, 900)
    login_failures_account: RateValue = RateSpec(10, 900)
    password_failures: RateValue = RateSpec(10, 900)
    password_reset: RateValue = RateSpec(10, 3600)
    password_reset_mail: RateValue = RateSpec(5, 3600)
    password_reset_confirm: RateValue = RateSpec(10, 3600)
    verification_mail: RateValue = RateSpec(5, 3600)
    profile_update: RateValue = RateSpec(60, 3600)
    account_change: RateValue = RateSpec(20, 3600)
    # The data export reads everything a person has at once: a few a day is plenty.
    account_export: RateValue = RateSpec(5, 86400)
    phone_code: RateValue = RateSpec(5, 3600)
    phone_verify: RateValue = RateSpec(20, 3600)
    block: RateValue = RateSpec(60, 60)

    # Messaging.
    message_send: RateValue = RateSpec(20, 10)
    message_edit: RateValue = RateSpec(30, 60)
    message_delete: RateValue = RateSpec(30, 60)
    reaction: RateValue = RateSpec(30, 10)
    typing: RateValue = RateSpec(10, 10)
    typing_stop: RateValue = RateSpec(30, 10)
    receipt: RateValue = RateSpec(600, 60)
    conversation_create: RateValue = RateSpec(30, 3600)
    conversation_manage: RateValue = RateSpec(120, 3600)
    presence_query: RateValue = RateSpec(60, 60)
    presence_subscribe: RateValue = RateSpec(120, 60)

    # Media, notifications, outreach.
    media_upload: RateValue = RateSpec(30, 60)
    notification_write: RateValue = RateSpec(120, 60)
    push_subscription: RateValue = RateSpec(30, 3600)
    outreach_subscriptions: RateValue = RateSpec(30, 3600)
    unsubscribe: RateValue = RateSpec(60, 3600)
    test_send: RateValue = RateSpec(5, 3600)
    test_send_admin: RateValue = RateSpec(60, 3600)
    campaign_manage: RateValue = RateSpec(120, 3600)

    # Social graph.
    follow: RateValue = RateSpec(60, 60)
    friend_request: RateValue = RateSpec(60, 60)
    network_manage: RateValue = RateSpec(120, 60)

    # Content.
    item_create: RateValue = RateSpec(30, 60)
    item_edit: RateValue = RateSpec(30, 60)
    item_delete: RateValue = RateSpec(30, 60)
    engagement: RateValue = RateSpec(120, 60)
    item_subscribe: RateValue = RateSpec(300, 60)
    # Ending subscriptions frees resources: a counter of its own, so reaching the subscribe
    # limit never keeps a client from unsubscribing.
    item_unsubscribe: RateValue = RateSpec(1200, 60)
    clique_create: RateValue = RateSpec(10, 3600)
    clique_invite: RateValue = RateSpec(50, 3600)
    clique_join: RateValue = RateSpec(60, 3600)
    clique_moderate: RateValue = RateSpec(300, 3600)
    story_create: RateValue = RateSpec(100, 3600)
    story_react: RateValue = RateSpec(30, 10)
    story_view: RateValue = RateSpec(600, 60)
    highlight: RateValue = RateSpec(60, 3600)
    slide_create: RateValue = RateSpec(30, 3600)
    slide_view: RateValue = RateSpec(600, 60)
    # Client analytics batches (up to 100 events each), per user.
    analytics_events: RateValue = RateSpec(120, 60)

    # OAuth apps (docs/oauth.md): registering and changing apps, an admin suspending them,
    # a user revoking what they granted.
    oauth_app_manage: RateValue = RateSpec(30, 3600)
    oauth_app_moderate: RateValue = RateSpec(120, 3600)
    oauth_grant_manage: RateValue = RateSpec(60, 3600)
    # RFC 7591 dynamic registration (POST /oauth/register, when on), per IP, on top of
    # oauth_app_manage per owner: attempts a caller without a valid token makes count too.
    oauth_register_ip: RateValue = RateSpec(20, 3600)
    # The OAuth token endpoint (and /oauth/revoke, /oauth/introspect per IP): requests per
    # client_id, and per IP whatever the client.
    oauth_token_client: RateValue = RateSpec(120, 60)
    oauth_token_ip: RateValue = RateSpec(300, 60)
    # The device flow's user-code entry (/oauth/device), failure counters against guessing
    # a code: wrong codes per IP, and per page session (the signed consent cookie).
    oauth_device_code_failures_ip: RateValue = RateSpec(20, 900)
    oauth_device_code_failures_session: RateValue = RateSpec(5, 900)

    def spec(self, name: str) -> RateSpec:
        """The limit of a named rate; a name that is not a field is a programming error."""
        value = getattr(self, name, None)
        if not isinstance(value, RateSpec):
            raise KeyError(f"no rate named {name!r}")
        return value

    @classmethod
    def names(cls) -> frozenset[str]:
        return frozenset(cls.model_fields)
