"""Notification fan-out benchmark: the notifications worker with RabbitMQ in the loop, against direct writes.

    .venv/bin/python -m bench.notifications [--quick] [--members N] [--reactions N] [--pushes N]

One process, on a fresh PostgreSQL database and a unique RabbitMQ and Redis namespace:
the worker consumes its durable queue as in production (publisher confirms, manual acks,
prefetch 20, presence counted in Redis), and a local aiohttp stand-in plays the Web Push
service. Three scenarios, each timed from the first publish to the last effect, beside a
baseline that reaches the same end state without the queue or the worker's rules:

1. group message: one message in a group of N offline members -> N notifications
   (baseline: the same N rows in one INSERT)
2. reactions: N members react to one message -> one notification grouping N actors
   (baseline: N single-row upserts of that notification, 20 at a time)
3. web push: one message to M offline members, each with a Web Push subscription -> M
   encrypted, VAPID-signed pushes received (baseline: the same pushes posted directly)

Each scenario runs --repeat times (the median is shown). Prints a table and, for full
runs, writes docs/benchmarks-notifications.md. Everything it creates is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import secrets
import shlex
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bench import report
from bench.common import log
from bench.servers import (
    AMQP_URL,
    REDIS_URL,
    ROOT,
    create_database,
    drop_database,
    drop_queues,
    drop_redis_keys,
    run_cleanup,
)
from channels.bus import InProcessBus
from channels.presence import RedisPresenceStore
from channels.realtime import Realtime
from config.clock import utc_now
from config.push_services import PushTargets
from config.vapid import load_vapid
from jobs.notifications import QUEUE, stored_job
from jobs.queue import AmqpQueue, new_job
from storage import conversations as conversation_store
from storage.db import Database
from storage.migrate import migrate
from storage.push_subscriptions import PushSubscription
from workers.notifications import NotificationWorker
from workers.push import PushMessage, WebPushSender

DOCS = ROOT / "docs" / "benchmarks-notifications.md"
CONCURRENCY = 20
VAPID_SUBJECT = "mailto:bench@hotspot.local"


@dataclass(frozen=True)
class Sizes:
    members: int
    reactions: int
    pushes: int
    repeat: int


FULL = Sizes(members=1000, reactions=300, pushes=300, repeat=3)
QUICK = Sizes(members=100, reactions=30, pushes=30, repeat=1)


@dataclass
class Timing:
    scenario: str
    n: int
    unit: str
    queued_s: list[float]
    direct_s: list[float]


class Counter:
    """Counts completions and wakes whoever waits for a number of them."""

    def __init__(self) -> None:
        self.done = 0
        self._changed = asyncio.Event()

    def add(self, n: int = 1) -> None:
        self.done += n
        self._changed.set()

    async def reach(self, target: int, timeout_s: float = 300.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.done < target:
            self._changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"only {self.done} of {target} done")
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                continue


@dataclass
class Rig:
    db: Database
    queue: AmqpQueue
    worker: NotificationWorker
    handled: Counter
    pushes: Counter
    push_url: str
    sender: WebPushSender


async def make_users(db: Database, count: int, prefix: str) -> list[uuid.UUID]:
    rows = await db.pool.fetch(
        """INSERT INTO users (username, email, display_name)
           SELECT $1 || g, $1 || g || '@bench.local', 'Bench ' || g FROM generate_series(1, $2) g
           RETURNING id""",
        prefix, count)
    return [r["id"] for r in rows]


async def make_group(db: Database, members: list[uuid.UUID]) -> uuid.UUID:
    async with db.transaction() as conn:
        group = await conversation_store.insert_conversation(
            conn, kind="group", title="bench", avatar_url=None, created_by=members[0], key=None)
        assert group is not None
        await conversation_store.upsert_members(
            conn, group.id, [(members[0], "owner"), *((m, "member") for m in members[1:])], 0)
    return group.id


async def mark_all_read(db: Database) -> None:
    """Between repeats: the next run starts fresh groups instead of folding into these."""
    await db.pool.execute("UPDATE notifications SET read_at = now() WHERE read_at IS NULL")


async def timed(start: Awaitable[Any], finished: Awaitable[Any] | None = None) -> float:
    """Seconds from awaiting start to the end of finished (both made just before the call)."""
    began = time.perf_counter()
    await start
    if finished is not None:
        await finished
    return time.perf_counter() - began


async def group_message(rig: Rig, sizes: Sizes) -> Timing:
    members = await make_users(rig.db, sizes.members + 1, f"gm{secrets.token_hex(3)}_")
    group = await make_group(rig.db, members)
    timing = Timing("group message -> notifications", sizes.members, "notifications", [], [])
    for _ in range(sizes.repeat):
        await mark_all_read(rig.db)
        job = stored_job([{"id": str(uuid.uuid4()), "conversation_id": str(group),
                           "sender_id": str(members[0]), "body": "lunch at noon?", "reply_to": None}])
        target = rig.handled.done + 1
        timing.queued_s.append(await timed(rig.queue.publish(QUEUE, job), rig.handled.reach(target)))
        made = await rig.db.pool.fetchval(
            "SELECT count(*) FROM notifications WHERE data->>'message_id' = $1", job["messages"][0]["id"])
        assert made == sizes.members, f"{made} notifications, expected {sizes.members}"
        await mark_all_read(rig.db)

        timing.direct_s.append(await timed(rig.db.pool.execute(
            """INSERT INTO notifications (user_id, kind, group_key, actor_ids, actor_count,
                                          subject_type, subject_id, data)
               SELECT u, 'message', 'direct:' || $2::text, ARRAY[$3::uuid], 1, 'message', $4,
                      '{"preview": "lunch at noon?"}'::jsonb
               FROM unnest($1::uuid[]) AS u""",
            members[1:], str(group), members[0], uuid.uuid4())))
    return timing


async def reactions(rig: Rig, sizes: Sizes) -> Timing:
    members = await make_users(rig.db, sizes.reactions + 1, f"re{secrets.token_hex(3)}_")
    group = await make_group(rig.db, members)
    timing = Timing("reactions -> one grouped notification", sizes.reactions, "reactions", [], [])
    for _ in range(sizes.repeat):
        await mark_all_read(rig.db)
        message_id = uuid.uuid4()
        await rig.db.pool.execute(
            """INSERT INTO messages (id, conversation_id, seq, sender_id, client_id, body)
               VALUES ($1, $2, (SELECT coalesce(max(seq), 0) + 1 FROM messages WHERE conversation_id = $2),
                       $3, $4, 'I passed the exam')""",
            message_id, group, members[0], str(message_id))
        jobs = [new_job("reaction.added", message_id=str(message_id), actor_id=str(m), emoji="🎉")
                for m in members[1:]]
        target = rig.handled.done + len(jobs)
        timing.queued_s.append(await timed(
            asyncio.gather(*(rig.queue.publish(QUEUE, j) for j in jobs)), rig.handled.reach(target)))
        count = await rig.db.pool.fetchval(
            "SELECT count FROM notifications WHERE group_key = $1 AND read_at IS NULL",
            f"reaction:{message_id}")
        assert count == sizes.reactions, f"grouped {count}, expected {sizes.reactions}"
        upsert = partial(
            rig.db.pool.execute,
            """INSERT INTO notifications AS n (user_id, kind, group_key, actor_ids, actor_count)
               VALUES ($1, 'reaction', $2, ARRAY[$3::uuid], 1)
               ON CONFLICT (user_id, group_key) WHERE read_at IS NULL DO UPDATE SET
                   count = n.count + 1, actor_count = n.actor_count + 1,
                   actor_ids = (ARRAY[$3::uuid] || n.actor_ids)[1:10], updated_at = now()""",
            members[0], f"direct-reaction:{message_id}")
        timing.direct_s.append(await timed(_limited([partial(upsert, m) for m in members[1:]])))
    return timing


def browser_keys() -> tuple[str, str]:
    """One subscription key pair for every subscriber; each push still gets its own ephemeral key."""
    public = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return (base64.urlsafe_b64encode(public).decode().rstrip("="),
            base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("="))


async def web_pushes(rig: Rig, sizes: Sizes) -> Timing:
    members = await make_users(rig.db, sizes.pushes + 1, f"wp{secrets.token_hex(3)}_")
    p256dh, auth = browser_keys()
    group = await make_group(rig.db, members)
    rows = await rig.db.pool.fetch(
        """INSERT INTO push_subscriptions (user_id, kind, endpoint, p256dh, auth)
           SELECT u, 'webpush', $2 || u::text, $3, $4 FROM unnest($1::uuid[]) AS u
           RETURNING id, user_id, endpoint, created_at""",
        members[1:], rig.push_url + "/wp/", p256dh, auth)
    subs = [PushSubscription(r["id"], r["user_id"], None, "webpush", r["endpoint"], p256dh, auth,
                             None, r["created_at"], None, None, None) for r in rows]
    timing = Timing("message -> Web Push deliveries", sizes.pushes, "pushes", [], [])
    for _ in range(sizes.repeat):
        await mark_all_read(rig.db)
        job = stored_job([{"id": str(uuid.uuid4()), "conversation_id": str(group),
                           "sender_id": str(members[0]), "body": "doors open at 8", "reply_to": None}])
        target = rig.pushes.done + sizes.pushes
        timing.queued_s.append(await timed(rig.queue.publish(QUEUE, job), rig.pushes.reach(target)))
        message = PushMessage({"kind": "message", "title": "bench", "body": "doors open at 8"}, 600)
        target = rig.pushes.done + sizes.pushes
        timing.direct_s.append(await timed(
            _limited([partial(rig.sender.send, s, message) for s in subs]), rig.pushes.reach(target)))
    return timing


async def _limited(calls: list[Callable[[], Awaitable[Any]]]) -> None:
    """Run the calls CONCURRENCY at a time, like the worker's prefetch."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(call: Callable[[], Awaitable[Any]]) -> None:
        async with gate:
            await call()

    await asyncio.gather(*(one(c) for c in calls))


def push_service(counter: Counter) -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        await request.read()
        counter.add()
        return web.Response(status=201)

    app = web.Application()
    app.router.add_post("/wp/{id}", receive)
    return app


async def run(sizes: Sizes) -> list[Timing]:
    namespace = f"nbench{secrets.token_hex(4)}"
    db_name = f"hotspot_nbench_{secrets.token_hex(4)}"
    steps: list[tuple[str, Any]] = []
    try:
        dsn = await create_database(db_name)
        steps.append((f"drop database {db_name}", lambda: drop_database(db_name)))
        steps.append((f"delete RabbitMQ queues {namespace}.*", lambda: drop_queues(namespace)))
        steps.append((f"delete Redis keys {namespace}:*", lambda: drop_redis_keys(namespace)))
        await migrate(dsn)
        db = await Database.connect(dsn, 2, 10)
        steps.insert(0, ("close the database pool", db.close))
        pushes = Counter()
        runner = web.AppRunner(push_service(pushes), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        steps.insert(0, ("stop the push stand-in", runner.cleanup))
        port = runner.addresses[0][1]
        queue = AmqpQueue(AMQP_URL, namespace)
        await queue.connect()
        steps.insert(0, ("close the RabbitMQ connection", queue.close))
        client = aioredis.from_url(REDIS_URL)
        steps.insert(0, ("close Redis", client.aclose))
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY))
        pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()).decode()
        # The stand-in is local: the test-only private-target setting lets the sender reach it.
        sender = WebPushSender(load_vapid(pem), VAPID_SUBJECT,
                               PushTargets(("127.0.0.1",), allow_private=True),
                               connections=CONCURRENCY)
        worker = NotificationWorker(
            db, queue, Realtime(InProcessBus("bench")),
            RedisPresenceStore(client, namespace, "bench"), push_ttl_s=600, web_push=sender,
            mobile_push=sender, clock=utc_now, session=session)
        # After the queue stops handing out jobs (it closes first), the worker and its session.
        steps.insert(1, ("stop the worker", worker.stop))
        handled = Counter()

        async def handle(job: dict[str, Any]) -> None:
            await worker.handle(job)
            if job.get("type") != "push":
                handled.add()

        await queue.consume(QUEUE, handle, prefetch=CONCURRENCY)
        rig = Rig(db, queue, worker, handled, pushes, f"http://127.0.0.1:{port}", sender)
        timings = []
        for scenario in (group_message, reactions, web_pushes):
            log(f"running {scenario.__name__}")
            timings.append(await scenario(rig, sizes))
        return timings
    finally:
        await run_cleanup(steps)
        log("cleaned up: database dropped, queues and Redis keys deleted")


def cells(timings: list[Timing]) -> list[list[str]]:
    out = [["scenario", "N", "through RabbitMQ + worker", "per s", "direct (baseline)", "per s",
            "cost of the queue path"]]
    for t in timings:
        queued, direct = statistics.median(t.queued_s), statistics.median(t.direct_s)
        out.append([t.scenario, str(t.n), f"{queued * 1000:.0f} ms", f"{t.n / queued:,.0f}",
                    f"{direct * 1000:.0f} ms", f"{t.n / direct:,.0f}", f"{queued / direct:.1f}x"])
    return out


def write_docs(path: Path, table: list[list[str]], sizes: Sizes, command: str, load: str) -> None:
    machine = report.machine()
    text = f"""# Notification fan-out benchmark

Made by `{command}` on {datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
({", ".join(f"{k}: {v}" for k, v in machine.items())}; load average before the run: {load}).

{report.markdown_table(table)}

Each row is the median of {sizes.repeat} runs, timed from the first publish to the last
effect (the worker acknowledged the job, or the push stand-in received the last push).

- **group message**: one `messages.stored` job for a group of N offline members. The
  worker reads the audience (mutes, blocks), preferences and presence (one Redis script
  for all N), writes the N notifications and their idempotency keys in one transaction,
  then counts unread per user. Baseline: the same N rows in one `INSERT`.
- **reactions**: N `reaction.added` jobs on one message, handled 20 at a time; each folds
  into the sender's one unread notification (row lock, distinct-actor count). Baseline:
  N single-row upserts of one notification, 20 at a time.
- **web push**: one message to M offline members with a Web Push subscription: the fan-out
  job queues M push jobs, each encrypted (RFC 8291, aes128gcm) and VAPID-signed, then posted
  to a local stand-in answering 201. Baseline: the same M pushes encrypted and posted
  directly, 20 at a time, with no queue and no database.

The queue path buys durability (publisher confirms, manual acks after commit), retries
with backoff and dead letters, idempotent redelivery, and per-recipient rules; the
baseline has none of them. Numbers are for one worker process with prefetch 20 on the
machine above; more worker processes consume the same queue in parallel.
"""
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.notifications",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small, fast run (smoke check)")
    parser.add_argument("--members", type=int, help="group size for the group message scenario")
    parser.add_argument("--reactions", type=int, help="reactions on one message")
    parser.add_argument("--pushes", type=int, help="Web Push subscribers for the push scenario")
    parser.add_argument("--repeat", type=int, help="runs per scenario (the median is shown)")
    parser.add_argument("--docs", type=Path, help=f"write the markdown here (full runs: {DOCS})")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    sizes = Sizes(members=args.members or sizes.members, reactions=args.reactions or sizes.reactions,
                  pushes=args.pushes or sizes.pushes, repeat=args.repeat or sizes.repeat)
    load = report.machine_load_warning(log)
    try:
        timings = asyncio.run(run(sizes))
    except KeyboardInterrupt:
        log("interrupted; everything the run created was removed")
        return 130
    table = cells(timings)
    print(report.text_table(table))
    docs = args.docs if args.docs is not None else (None if args.quick else DOCS)
    if docs is not None:
        command = ".venv/bin/python -m bench.notifications " + shlex.join(
            sys.argv[1:] if argv is None else argv)
        write_docs(docs, table, sizes, command.strip(), load)
        log(f"wrote {docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
