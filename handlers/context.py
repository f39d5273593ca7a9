"""What a use case receives: the services it may use and who is asking."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from config.clock import utc_now
from handlers.errors import CommandError

if TYPE_CHECKING:
    from channels.analytics_live import LiveCounters
    from channels.insight_live import InsightLive
    from channels.item_live import ItemLive
    from channels.presence import Presence
    from channels.ratelimit import RateLimiter
    from channels.realtime import Realtime
    from channels.replies import ReplyWaiter
    from channels.revocation import RevocationList
    from channels.typing import TypingRelay
    from config import Settings
    from handlers.analytics_publisher import AnalyticsPublisher
    from handlers.oauth_keys import KeyRing
    from handlers.passwords import PasswordHasher
    from handlers.tokens import TokenService
    from jobs.queue import JobQueue
    from storage.blobs import BlobStore
    from storage.db import Database


@dataclass
class Services:
    """The long-lived resources a process opened at start; one per app, never global."""

    settings: Settings
    db: Database
    queue: JobQueue
    realtime: Realtime
    revocations: RevocationList
    limiter: RateLimiter
    tokens: TokenService
    passwords: PasswordHasher
    replies: ReplyWaiter
    presence: Presence
    typing: TypingRelay
    blobs: BlobStore
    item_live: ItemLive
    # Signs third-party access tokens and id_tokens; publishes /oauth/jwks.
    oauth_keys: KeyRing
    clock: Callable[[], datetime] = field(default=utc_now)
    # Buffers analytics events off the command path; None where nothing publishes them.
    analytics: AnalyticsPublisher | None = None
    # Today's analytics counters (Redis); None without Redis, where insights read today's
    # minute roll-ups instead (the embedded worker's counters live in its own memory).
    analytics_live: LiveCounters | None = None
    # Owner insight subscriptions (insight.subscribe); None where no sockets are served.
    insight_live: InsightLive | None = None


@dataclass(frozen=True)
class Principal:
    """The authenticated caller behind a verified access token."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    scopes: frozenset[str]
    token_id: str
    expires_at: int
    # The OAuth app a third-party token was issued to; None for a first-party token.
    client_id: str | None = None
    # The audiences of a third-party token (RFC 9068 `aud`); empty for a first-party token.
    audience: tuple[str, ...] = ()

    def expired(self) -> bool:
        return time.time() >= self.expires_at


@dataclass
class Context:
    """One command invocation: services, caller, and where the call came from."""

    services: Services
    principal: Principal | None
    transport: str
    request_id: str
    ip: str | None = None
    user_agent: str | None = None
    # The Socket.IO connection the command came on (None over REST).
    sid: str | None = None
    # The client asked not to be tracked (Do-Not-Track: 1 or Sec-GPC: 1 on the request or
    # the socket's handshake): client-side analytics become a no-op.
    do_not_track: bool = False

    @property
    def user(self) -> Principal:
        """The caller; commands that need a user are refused earlier when there is none."""
        if self.principal is None:
            raise CommandError("unauthorized", "authentication required")
        return self.principal
