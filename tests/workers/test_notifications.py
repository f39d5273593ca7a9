"""The notifications worker on real PostgreSQL and RabbitMQ: who is notified, how, and only once.

The worker under test publishes to a RabbitMQ namespace of its own that nothing consumes,
so the push jobs a fan-out queued can be read back exactly; pushes go to a local stand-in.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import aiohttp
import jwt
import orjson
import pytest
from py_vapid import Vapid02

from config import Settings
from config.clock import utc_now
from config.push_services import PushTargets
from config.vapid import load_vapid
from handlers.context import Services
from handlers.notifications import notify
from jobs.notifications import QUEUE, stored_job
from jobs.queue import AmqpQueue, new_job
from server.resources import SERVICES
from storage.db import Database
from storage.mentions import mentioned_usernames
from storage.notifications import Kind, Notification, purge_read_before, purge_sources_before
from storage.views.notifications import render
from tests.conftest import AMQP_URL, Account, SocketFactory, signup
from tests.handlers.conversation_helpers import Inbox, create_group, is_event, ok, rest
from tests.push_standin import BrowserKeys, PushStandIn, standin_settings
from tests.workers.notification_helpers import message, quiet_now
from workers.notification_push import PushDeferred
from workers.notifications import NotificationWorker
from workers.push import HttpMobilePush, WebPushSender, retry_after_seconds


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Pushes here go to the local stand-in, which only the test-only setting lets through."""
    return standin_settings(settings)


@pytest.fixture
async def push_service(aiohttp_server: Any) -> PushStandIn:
    standin = PushStandIn()
    server = await aiohttp_server(standin.app())
    standin.base_url = str(server.make_url("")).rstrip("/")
    return standin


@dataclass
class Rig:
    worker: NotificationWorker
    namespace: str
    db: Database
    services: Services
    queue: AmqpQueue


@pytest.fixture
async def rig(client: Any, settings: Settings, namespaces: list[str],
              push_service: PushStandIn) -> AsyncIterator[Rig]:
    namespace = f"t{secrets.token_hex(5)}"
    namespaces.append(namespace)
    queue = AmqpQueue(AMQP_URL, namespace)
    await queue.connect()
    db = await Database.connect(settings.database_url or "", 1, 3)
    services: Services = client.app[SERVICES]
    session = aiohttp.ClientSession()
    vapid = load_vapid(settings.resolved_vapid_private_key())
    worker = NotificationWorker(
        db, queue, services.realtime, services.presence.store, push_ttl_s=600,
        web_push=WebPushSender(vapid, settings.vapid_subject, PushTargets.from_settings(settings)),
        mobile_push=HttpMobilePush(session, push_service.base_url + "/relay", "relay-key"),
        clock=utc_now, session=session)
    yield Rig(worker, namespace, db, services, queue)
    await worker.stop()
    await queue.close()
    await db.close()


async def queued_jobs(namespace: str) -> list[dict[str, Any]]:
    """Take every job waiting in the rig's notifications queue."""
    jobs: list[dict[str, Any]] = []
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"{namespace}.{QUEUE}", durable=True)
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            jobs.append(orjson.loads(message.body))
    return jobs


async def subscribe(client: Any, account: Account, endpoint: str, keys: BrowserKeys) -> str:
    resp = await rest(client, account, "push.subscribe",
                      {"kind": "webpush", "endpoint": endpoint, "keys": keys.keys()})
    return str((await ok(resp, 201))["id"])


async def rows_for_message(db: Database, message_id: str) -> dict[str, tuple[str, int]]:
    rows = await db.pool.fetch(
        "SELECT user_id, kind, count FROM notifications WHERE data->>'message_id' = $1", message_id)
    return {str(r["user_id"]): (r["kind"], r["count"]) for r in rows}


async def test_message_fan_out_applies_presence_mutes_blocks_preferences_and_quiet_hours(
    client: Any, rig: Rig, push_service: PushStandIn, connect_socket: SocketFactory
) -> None:
    names = ["alice", "bob", "carol", "dave", "erin", "frank", "gina", "hank", "ivan"]
    people = {n: await signup(client, username=f"{n}{secrets.token_hex(3)}") for n in names}
    alice = people["alice"]
    group = await create_group(client, alice, *(people[n] for n in names[1:]))
    cid = group["id"]
    keys = {n: BrowserKeys() for n in names}
    for n in ("carol", "dave", "erin", "frank", "gina", "ivan"):
        await subscribe(client, people[n], f"{push_service.base_url}/wp/{n}", keys[n])
    await ok(await rest(client, people["dave"], "notification.set_preferences",
                        {"changes": [{"kind": "message", "channel": "push", "enabled": False}]}))
    await ok(await rest(client, people["ivan"], "notification.set_preferences",
                        {"changes": [{"kind": "message", "channel": "in_app", "enabled": False}]}))
    await ok(await rest(client, people["erin"], "notification.set_quiet_hours", quiet_now()))
    await ok(await rest(client, people["frank"], "conversation.mute", {"conversation_id": cid}))
    await ok(await rest(client, people["gina"], "user.block", {"user_id": alice.id}), 204)
    await connect_socket(people["bob"].access_token)
    hank_inbox = Inbox(await connect_socket(people["hank"].access_token), "notification.new")

    m = message(cid, alice, f"hello all, and @{people['hank'].username.upper()} in particular")
    await rig.worker.handle(stored_job([m]))

    made = await rows_for_message(rig.db, m["id"])
    assert made == {people["carol"].id: ("message", 1), people["dave"].id: ("message", 1),
                    people["erin"].id: ("message", 1), people["hank"].id: ("mention", 1)}
    pushes = [j for j in await queued_jobs(rig.namespace) if j["type"] == "push"]
    # dave turned message pushes off, erin is in quiet hours, hank is online.
    assert [j["user_id"] for j in pushes] == [people["carol"].id]
    await hank_inbox.wait_for(is_event("notification.new"))
    event = hank_inbox.events[0][1]
    assert event["unread_count"] == 1
    assert event["notification"]["kind"] == "mention"
    assert event["notification"]["title"] == f"{alice.username} mentioned you"

    # The same job again, as after a crash before its ack: nothing new, no second push.
    await rig.worker.handle(stored_job([m]))
    assert await rows_for_message(rig.db, m["id"]) == made
    assert await queued_jobs(rig.namespace) == []

    await rig.worker.handle(pushes[0])
    [request] = await push_service.wait_for("/wp/carol")
    payload = keys["carol"].decrypt(request.body)
    assert payload["kind"] == "message" and payload["unread_count"] == 1
    assert payload["body"].endswith("hello all, and @" + people["hank"].username.upper()
                                     + " in particular")


async def test_web_push_request_is_encrypted_and_vapid_signed(
    client: Any, rig: Rig, push_service: PushStandIn, settings: Settings
) -> None:
    alice, bob = await signup(client), await signup(client)
    group = await create_group(client, alice, bob)
    keys = BrowserKeys()
    await subscribe(client, bob, f"{push_service.base_url}/wp/bob", keys)
    await rig.worker.handle(stored_job([message(group["id"], alice, "a secret plan")]))
    [job] = await queued_jobs(rig.namespace)
    await rig.worker.handle(job)
    [request] = await push_service.wait_for("/wp/bob")

    headers = request.headers
    assert headers["Content-Encoding"] == "aes128gcm"
    assert 0 < int(headers["TTL"]) <= 600
    assert headers["Urgency"] == "high"
    assert len(headers["Topic"]) == 32
    assert b"secret plan" not in request.body
    assert keys.decrypt(request.body)["body"].endswith("a secret plan")
    # A different subscription key cannot read it.
    with pytest.raises(Exception):  # noqa: B017 - http_ece raises InvalidTag or its own error
        BrowserKeys(auth_secret=keys.auth_secret).decrypt(request.body)

    scheme, _, params = headers["Authorization"].partition(" ")
    assert scheme == "vapid"
    parts = dict(p.split("=", 1) for p in params.split(","))
    config = await ok(await client.get("/v1/push/config"))
    assert parts["k"] == config["vapid_public_key"]
    assert Vapid02.verify(headers["Authorization"])
    claims = jwt.decode(parts["t"], options={"verify_signature": False})
    assert claims["aud"] == push_service.base_url
    assert claims["sub"] == settings.vapid_subject
    assert claims["exp"] > time.time()


async def test_push_gone_removes_the_subscription(
    client: Any, rig: Rig, push_service: PushStandIn
) -> None:
    alice, bob = await signup(client), await signup(client)
    group = await create_group(client, alice, bob)
    await subscribe(client, bob, f"{push_service.base_url}/wp/gone", BrowserKeys())
    push_service.answer("/wp/gone", (410, {}))
    await rig.worker.handle(stored_job([message(group["id"], alice, "hi")]))
    [job] = await queued_jobs(rig.namespace)
    await rig.worker.handle(job)
    assert len(push_service.to("/wp/gone")) == 1
    listed = await ok(await rest(client, bob, "push.list_subscriptions"))
    assert listed["subscriptions"] == []
    # A retry of the same push finds no subscription and sends nothing.
    await rig.worker.handle(job)
    assert len(push_service.to("/wp/gone")) == 1


async def test_rate_limited_push_waits_for_retry_after_and_expired_push_is_dropped(
    client: Any, rig: Rig, push_service: PushStandIn
) -> None:
    alice, bob = await signup(client), await signup(client)
    group = await create_group(client, alice, bob)
    await subscribe(client, bob, f"{push_service.base_url}/wp/busy", BrowserKeys())
    push_service.answer("/wp/busy", (429, {"Retry-After": "120"}))
    await rig.worker.handle(stored_job([message(group["id"], alice, "hi")]))
    [job] = await queued_jobs(rig.namespace)
    with pytest.raises(PushDeferred):
        await rig.worker.handle(job)
    [sub] = (await ok(await rest(client, bob, "push.list_subscriptions")))["subscriptions"]
    assert sub["last_error"] == "HTTP 429"
    # Retried before Retry-After has passed: deferred again without asking the service.
    with pytest.raises(PushDeferred):
        await rig.worker.handle(job)
    assert len(push_service.to("/wp/busy")) == 1
    # A push whose TTL ends before the backoff does is dropped rather than retried.
    short = {**job, "expires_at": time.time() + 60}
    await rig.worker.handle(short)
    # And one past its TTL is never sent, even when the service would take it.
    await rig.db.pool.execute("UPDATE push_subscriptions SET backoff_until = NULL")
    await rig.worker.handle({**job, "expires_at": time.time() - 1})
    assert len(push_service.to("/wp/busy")) == 1
    await rig.worker.handle(job)
    assert len(push_service.to("/wp/busy")) == 2


async def test_no_push_once_the_user_has_a_connected_device(
    client: Any, rig: Rig, push_service: PushStandIn, connect_socket: SocketFactory
) -> None:
    alice, bob = await signup(client), await signup(client)
    group = await create_group(client, alice, bob)
    await subscribe(client, bob, f"{push_service.base_url}/wp/back", BrowserKeys())
    await rig.worker.handle(stored_job([message(group["id"], alice, "hi")]))
    [job] = await queued_jobs(rig.namespace)
    await connect_socket(bob.access_token)
    await rig.worker.handle(job)
    assert push_service.to("/wp/back") == []


async def test_mobile_push_goes_through_the_relay_and_dead_tokens_are_removed(
    client: Any, rig: Rig, push_service: PushStandIn
) -> None:
    alice, bob = await signup(client), await signup(client)
    group = await create_group(client, alice, bob)
    await ok(await rest(client, bob, "push.subscribe", {"kind": "fcm", "token": "fcm-token-1"}), 201)
    await rig.worker.handle(stored_job([message(group["id"], alice, "ping")]))
    [job] = await queued_jobs(rig.namespace)
    await rig.worker.handle(job)
    [request] = await push_service.wait_for("/relay")
    assert request.headers["Authorization"] == "Bearer relay-key"
    sent = orjson.loads(request.body)
    assert sent["platform"] == "fcm" and sent["token"] == "fcm-token-1"
    assert sent["body"] == f"{alice.username}: ping" and sent["priority"] == "high"
    push_service.answer("/relay", (404, {}))
    await rig.worker.handle(job)
    assert (await ok(await rest(client, bob, "push.list_subscriptions")))["subscriptions"] == []


async def test_replies_group_per_message_and_count_distinct_actors(
    client: Any, rig: Rig
) -> None:
    alice, bob, carol = await signup(client), await signup(client), await signup(client)
    group = await create_group(client, alice, bob, carol)
    first = message(group["id"], alice, "what do you think?")
    db = rig.db
    await db.pool.execute(
        """INSERT INTO messages (id, conversation_id, seq, sender_id, client_id, body)
           VALUES ($1, $2, 1, $3, 'c1', $4)""",
        uuid.UUID(first["id"]), uuid.UUID(group["id"]), uuid.UUID(alice.id), first["body"])
    for sender, body in ((bob, "yes"), (carol, "no"), (bob, "well, maybe")):
        await rig.worker.handle(stored_job([message(group["id"], sender, body, first["id"])]))
    row = await db.pool.fetchrow(
        "SELECT kind, count, actor_count, actor_ids FROM notifications WHERE user_id = $1",
        uuid.UUID(alice.id))
    assert row is not None
    assert (row["kind"], row["count"], row["actor_count"]) == ("reply", 3, 2)
    assert [str(a) for a in row["actor_ids"]] == [bob.id, carol.id]


async def test_notify_use_case_groups_skips_blockers_and_is_idempotent(
    client: Any, rig: Rig
) -> None:
    bob, carol, dave, erin = [await signup(client) for _ in range(4)]
    await ok(await rest(client, erin, "user.block", {"user_id": dave.id}), 204)
    # notify() publishes to the rig's queue; its jobs are then handled one by one, in order.
    services = replace(rig.services, queue=rig.queue)
    for follower in (carol, dave, carol):
        for followed in (bob, erin):
            assert await notify(services, Kind.FOLLOW, [uuid.UUID(followed.id)],
                                source_key=f"follow:{follower.id}:{followed.id}",
                                actor_id=uuid.UUID(follower.id), group_key=f"follow:{followed.id}",
                                subject=("user", uuid.UUID(follower.id)))
    jobs = await queued_jobs(rig.namespace)
    assert [j["type"] for j in jobs] == ["notify"] * 6
    for job in jobs * 2:  # everything twice: a redelivery changes nothing
        await rig.worker.handle(job)

    async def listed(account: Account) -> list[dict[str, Any]]:
        page = await ok(await rest(client, account, "notification.list"))
        return list(page["notifications"])

    [follow] = await listed(bob)
    assert (follow["kind"], follow["count"], follow["actor_count"]) == ("follow", 2, 2)
    assert follow["actor_ids"] == [dave.id, carol.id]
    assert follow["subject"] == {"type": "user", "id": dave.id}
    assert follow["title"] == f"{dave.username} and 1 other followed you"
    # Erin blocked dave: only carol's follow reached her, once.
    [only] = await listed(erin)
    assert (only["count"], only["actor_ids"]) == (1, [carol.id])
    with pytest.raises(ValueError, match="subject type"):
        await notify(services, Kind.SYSTEM, [uuid.UUID(bob.id)], source_key="s",
                     subject=("planet", uuid.uuid4()))


def test_mentions_and_texts() -> None:
    assert mentioned_usernames("hi @Bob, @bob and @carol_1! mail a@b.c @x") == ["bob", "carol_1"]
    assert mentioned_usernames(None) == []
    now = datetime.now(UTC)

    def note(kind: str, count: int, actors: int, **data: Any) -> Notification:
        return Notification(uuid.uuid4(), uuid.uuid4(), kind, "g", [], actors, count, None, None,
                            data, 1, now, now, None)

    assert render(note("reaction", 4, 4, actor_name="Ann", emoji="👍")) == \
        ("Ann and 3 others reacted 👍 to your message", "")
    assert render(note("message", 1, 1, actor_name="Ann", preview="hi")) == ("Ann", "hi")
    assert render(note("message", 3, 1, actor_name="Ann", preview="hi", conversation_kind="group",
                       conversation_title="Team")) == ("Team", "3 new messages · Ann: hi")
    assert render(note("system", 1, 0, title="Policy", body="updated")) == ("Policy", "updated")
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after_seconds("soon") is None


async def test_unknown_job_type_fails_for_the_dead_letter_queue(rig: Rig) -> None:
    with pytest.raises(ValueError, match="unknown"):
        await rig.worker.handle(new_job("nonsense"))


async def test_old_source_keys_and_read_notifications_are_purged(client: Any, rig: Rig) -> None:
    bob = await signup(client)
    await rig.db.pool.execute(
        """INSERT INTO notification_sources (user_id, source_key, created_at)
           VALUES ($1, 'old', now() - interval '40 days'), ($1, 'new', now())""",
        uuid.UUID(bob.id))
    assert await purge_sources_before(rig.db, datetime.now(UTC) - timedelta(days=30)) >= 1
    kept = await rig.db.pool.fetch(
        "SELECT source_key FROM notification_sources WHERE user_id = $1", uuid.UUID(bob.id))
    assert [r["source_key"] for r in kept] == ["new"]
    await rig.db.pool.execute(
        """INSERT INTO notifications (user_id, kind, group_key, read_at) VALUES
               ($1, 'system', 'old-read', now() - interval '100 days'),
               ($1, 'system', 'recent-read', now() - interval '1 day'),
               ($1, 'system', 'unread', NULL)""",
        uuid.UUID(bob.id))
    assert await purge_read_before(rig.db, datetime.now(UTC) - timedelta(days=90)) >= 1
    left = await rig.db.pool.fetch(
        "SELECT group_key FROM notifications WHERE user_id = $1 ORDER BY group_key",
        uuid.UUID(bob.id))
    assert [r["group_key"] for r in left] == ["recent-read", "unread"]


@pytest.mark.parametrize(("kind", "data", "title"), [
    ("reply", {"item_kind": "comment", "parent_kind": "slide"}, "Ann commented on your slide"),
    ("reply", {"item_kind": "reply", "parent_kind": "comment"}, "Ann replied to your comment"),
    ("reply", {}, "Ann replied to your message"),
    ("reaction", {"emoji": "❤️", "item_kind": "story"}, "Ann reacted ❤️ to your story"),
    ("share", {"item_kind": "slide"}, "Ann shared your slide"),
    ("quote", {"item_kind": "notice", "quoted_kind": "post"}, "Ann quoted your post"),
])
def test_item_notifications_name_what_was_answered(kind: str, data: dict[str, Any],
                                                   title: str) -> None:
    note = Notification(
        id=uuid.uuid4(), user_id=uuid.uuid4(), kind=kind, group_key="g", actor_ids=[uuid.uuid4()],
        actor_count=1, count=1, subject_type="item", subject_id=uuid.uuid4(),
        data={"actor_name": "Ann", **data}, seq=1, created_at=datetime.now(UTC),
        updated_at=datetime.now(UTC), read_at=None)
    assert render(note)[0] == title
