"""Long-lived resources, one aiohttp cleanup_ctx generator each, opened at start."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web

from channels.analytics_live import RedisLiveCounters
from channels.bus import Bus, InProcessBus, RedisBus
from channels.insight_live import InsightLive
from channels.item_live import ItemLive
from channels.presence import MemoryPresenceStore, Presence, PresenceStore, RedisPresenceStore
from channels.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from channels.realtime import Realtime
from channels.replies import ReplyWaiter
from channels.revocation import RevocationList
from channels.topics import reply_topic
from channels.typing import MemoryTypingStore, RedisTypingStore, TypingRelay, TypingStore
from config import Settings, SettingsError
from handlers.analytics_publisher import AnalyticsPublisher
from handlers.context import Services
from handlers.oauth_keys import KeyCipher, KeyRing, KeyRingError
from handlers.passwords import PasswordHasher
from handlers.tokens import TokenService
from jobs.queue import AmqpQueue, InProcessQueue, JobQueue
from server.metrics import Metrics
from storage import blocks as block_storage
from storage import items as item_storage
from storage import presence as presence_storage
from storage.blobs import BlobStore, LocalBlobStore
from storage.conversations import conversation_ids_for_user
from storage.db import Database
from storage.embedded import EmbeddedPostgres
from storage.migrate import migrate
from storage.sessions import recently_revoked
from workers.runner import start_workers

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
DATABASE = web.AppKey("database", Database)
REDIS = web.AppKey("redis", aioredis.Redis)
BUS = web.AppKey("bus", Bus)
QUEUE = web.AppKey("queue", JobQueue)
SERVICES = web.AppKey("services", Services)
BLOBS: web.AppKey[BlobStore] = web.AppKey("blobs")
DSN = web.AppKey("dsn", str)
WORKER_NAMES = web.AppKey("worker_names", list[str])
OAUTH_KEYS = web.AppKey("oauth_keys", KeyRing)
ANALYTICS = web.AppKey("analytics", AnalyticsPublisher)


class StartupError(Exception):
    """A dependency is missing or unreachable at start; the message says which."""


def build_token_service(settings: Settings, keys: KeyRing | None = None) -> TokenService:
    """The token service; third-party (OAuth app) tokens need the process's key ring."""
    signing: Any
    verifying: Any
    if settings.jwt_algorithm == "HS256":
        signing = verifying = settings.resolved_jwt_secret()
    else:
        assert settings.jwt_private_key_file and settings.jwt_public_key_file
        signing = settings.jwt_private_key_file.read_text()
        verifying = settings.jwt_public_key_file.read_text()
    return TokenService(algorithm=settings.jwt_algorithm, signing_key=signing,
                        verifying_key=verifying, issuer=settings.jwt_issuer,
                        ttl_s=settings.access_token_ttl_s, keys=keys,
                        oauth_issuer=settings.oauth_issuer)


def build_key_ring(settings: Settings, db: Database) -> KeyRing:
    """The OAuth signing key ring (not started); the CLI's rotate-key uses it too."""
    try:
        cipher = KeyCipher(settings.resolved_oauth_key_secret())
    except SettingsError as exc:
        raise StartupError(str(exc)) from exc
    return KeyRing(db, cipher, alg=settings.oauth_signing_alg,
                   token_lifetime_s=max(settings.access_token_ttl_s, settings.oauth_id_token_ttl_s),
                   refresh_s=settings.oauth_key_refresh_s, production=settings.env == "production")


async def oauth_keys_ctx(app: web.Application) -> AsyncIterator[None]:
    """Load the signing keys (creating the first one) and re-read them on a timer."""
    ring = build_key_ring(app[SETTINGS], app[DATABASE])
    try:
        await ring.start()
    except KeyRingError as exc:
        raise StartupError(str(exc)) from exc
    app[OAUTH_KEYS] = ring
    try:
        yield
    finally:
        await ring.stop()


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    embedded: EmbeddedPostgres | None = None
    dsn = settings.database_url
    if dsn is None:
        embedded = EmbeddedPostgres(settings.data_dir / "pg")
        dsn = await embedded.start()
    try:
        app[DSN] = dsn
        applied = await migrate(dsn)
        if applied:
            log.info("migrations applied", extra={"migrations": applied})
        app[DATABASE] = await Database.connect(
            dsn, settings.database_pool_min, settings.database_pool_max
        )
    except OSError as exc:
        raise StartupError(f"PostgreSQL is not reachable ({exc})") from exc
    try:
        yield
    finally:
        await app[DATABASE].close()
        if embedded is not None:
            await embedded.stop()


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if settings.redis_url is None:
        app[BUS] = InProcessBus(settings.node_id)
        yield
        await app[BUS].close()
        return
    client = aioredis.from_url(settings.redis_url, health_check_interval=15)
    try:
        await client.ping()
    except (aioredis.ConnectionError, OSError) as exc:
        raise StartupError(f"Redis at {settings.redis_url} is not reachable ({exc})") from exc
    bus = RedisBus(client, settings.namespace, settings.node_id)
    await bus.start()
    app[REDIS] = client
    app[BUS] = bus
    try:
        yield
    finally:
        await bus.close()
        await client.aclose()


async def queue_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    queue: InProcessQueue | AmqpQueue
    if settings.amqp_url is None:
        queue = InProcessQueue()
    else:
        queue = AmqpQueue(settings.amqp_url, settings.namespace)
        # The API keeps serving reads when RabbitMQ is down; sends answer unavailable.
        await queue.connect_in_background()
    app[QUEUE] = queue
    try:
        yield
    finally:
        await queue.close()


async def analytics_ctx(app: web.Application) -> AsyncIterator[None]:
    """The analytics publisher's buffer and its flushing task; what is left goes at shutdown."""
    dropped = app[METRICS].analytics_dropped
    publisher = AnalyticsPublisher(app[QUEUE], ip_secret=app[SETTINGS].analytics_ip_secret(),
                                   on_drop=dropped.inc)
    publisher.start()
    app[ANALYTICS] = publisher
    try:
        yield
    finally:
        await publisher.stop()


async def blobs_ctx(app: web.Application) -> AsyncIterator[None]:
    store = LocalBlobStore(app[SETTINGS].media_dir)
    await store.open_store()
    app[BLOBS] = store
    yield


async def services_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    redis_client = app.get(REDIS)
    bus = app[BUS]
    limiter: RateLimiter = (
        RedisRateLimiter(redis_client, settings.namespace) if redis_client is not None
        else MemoryRateLimiter()
    )
    revocations = RevocationList(bus, settings.access_token_ttl_s, redis_client, settings.namespace)
    # The database remembers revocations across restarts, even with no Redis configured.
    await revocations.start(
        await recently_revoked(app[DATABASE], settings.access_token_ttl_s)
    )
    replies = ReplyWaiter(bus, reply_topic(settings.node_id))
    await replies.start()
    if isinstance(bus, RedisBus):
        bus.on_reconnect.append(revocations.reload)
    db = app[DATABASE]
    presence_store: PresenceStore
    typing_store: TypingStore
    if redis_client is not None:
        presence_store = RedisPresenceStore(
            redis_client, settings.namespace, settings.node_id,
            persist=lambda ids, at: presence_storage.set_last_seen(db, ids, at))
        typing_store = RedisTypingStore(redis_client, settings.namespace)
    else:
        presence_store = MemoryPresenceStore(
            bus, persist=lambda ids, at: presence_storage.set_last_seen(db, ids, at))
        typing_store = MemoryTypingStore()
    await presence_store.start()
    presence = Presence(presence_store, bus, load=lambda ids: presence_storage.last_seen(db, ids),
                        visible=lambda viewers, targets: presence_storage.visible_pairs(
                            db, viewers, targets))
    realtime = Realtime(bus, lambda user_id: conversation_ids_for_user(app[DATABASE], user_id),
                        presence=presence)
    typing = TypingRelay(realtime, typing_store, settings.limits.typing_ttl_s)
    item_live = ItemLive(bus, realtime,
                         blocked=lambda users, others: block_storage.blocked_pairs(
                             db, users, others),
                         viewers=lambda item_id, users: item_storage.who_can_see(
                             db, item_id, users))
    insight_live = InsightLive(realtime)
    app[SERVICES] = Services(
        settings=settings,
        db=app[DATABASE],
        queue=app[QUEUE],
        realtime=realtime,
        presence=presence,
        typing=typing,
        revocations=revocations,
        limiter=limiter,
        tokens=build_token_service(settings, app[OAUTH_KEYS]),
        oauth_keys=app[OAUTH_KEYS],
        passwords=PasswordHasher(settings.argon2_time_cost, settings.argon2_memory_kib,
                                 settings.argon2_parallelism),
        replies=replies,
        blobs=app[BLOBS],
        item_live=item_live,
        analytics=app[ANALYTICS],
        analytics_live=(None if redis_client is None
                        else RedisLiveCounters(redis_client, settings.namespace)),
        insight_live=insight_live,
    )
    try:
        yield
    finally:
        await insight_live.close()
        await item_live.close()
        await typing.close()
        await presence.close()
        await presence_store.stop()
        await replies.stop()
        await revocations.stop()


async def workers_ctx(app: web.Application) -> AsyncIterator[None]:
    names = app[WORKER_NAMES]
    running = None
    if names:
        services = app[SERVICES]
        running = await start_workers(app[SETTINGS], app[QUEUE], names, app[DATABASE], app[DSN],
                                      app[BUS], realtime=services.realtime,
                                      presence=services.presence.store, redis=app.get(REDIS))
        log.info("workers started", extra={"workers": running.names})
    yield
    await app[QUEUE].stop_consuming()
    if running is not None:
        await running.stop()


def resource_contexts() -> list[Any]:
    """In order: each may use what the ones before it opened."""
    return [database_ctx, redis_ctx, queue_ctx, analytics_ctx, blobs_ctx, oauth_keys_ctx, services_ctx,
            workers_ctx]
