"""Analytics benchmark: events/s through RabbitMQ + the analytics worker vs a plain COPY, and report latency.

1. Pipeline: N events are published to RabbitMQ first (publisher confirms, 500 per job),
   so the load generator cannot be what limits the worker; its rate and CPU are reported.
   Then the analytics worker drains the queue into the day partitions + three roll-ups.
2. Baseline: the same rows COPYed into a plain, unindexed PostgreSQL table in the same run.
3. Reports: `--seed` events COPYed straight into 30 day partitions (plus their day
   roll-up), then each admin report timed (p50/p99).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import shlex
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import report
from bench.common import log, percentile
from bench.servers import AMQP_URL, ROOT, create_database, drop_database, drop_queues, run_cleanup
from channels.analytics_live import MemoryLiveCounters
from config.clock import utc_now
from handlers import analytics_admin as reports
from jobs.analytics import QUEUE, AnalyticsEvent, events_jobs
from jobs.queue import AmqpQueue
from storage.analytics import (
    COLUMNS,
    EventRow,
    PostgresAnalyticsStore,
    Retention,
    create_partitions,
    partition_name,
)
from storage.db import Database
from storage.migrate import migrate
from workers.analytics import AnalyticsWorker

DOCS = ROOT / "docs" / "benchmarks-analytics.md"
NAMES = ["message.sent"] * 5 + ["item.created", "user.logged_in", "item.impression",
                                "story.viewed", "user.signed_up"]
SEED_DAYS = 30
CHUNK = 50_000


def make_event(users: list[uuid.UUID], at: datetime) -> AnalyticsEvent:
    return AnalyticsEvent(event_id=uuid.uuid4(), name=random.choice(NAMES), source="server",
                          occurred_at=at, received_at=at, user_id=random.choice(users),
                          subject_type="item", subject_id=uuid.uuid4())


async def pipeline(db: Database, namespace: str, n: int) -> dict[str, float]:
    users = [uuid.uuid4() for _ in range(max(10, n // 20))]
    now = utc_now()
    events = [make_event(users, now) for _ in range(n)]
    queue = AmqpQueue(AMQP_URL, namespace)
    await queue.connect()
    try:
        cpu0, t0 = time.process_time(), time.monotonic()
        await asyncio.gather(*(queue.publish(QUEUE, job, batch=True) for job in events_jobs(events)))
        publish_s, publish_cpu = time.monotonic() - t0, time.process_time() - cpu0
        log(f"published {n} events in {publish_s:.2f} s")
        worker = AnalyticsWorker(PostgresAnalyticsStore(db, Retention()), MemoryLiveCounters(),
                                 utc_now, batch_max=5000, batch_wait_s=0.2)
        await worker.start()
        done = asyncio.Event()
        stored = 0

        async def handle(job: dict[str, Any]) -> None:
            nonlocal stored
            await worker.handle(job)
            stored += len(job["events"])
            if stored >= n:
                done.set()

        t0 = time.monotonic()
        await queue.consume(QUEUE, handle, prefetch=1000)
        await asyncio.wait_for(done.wait(), 600)
        drain_s = time.monotonic() - t0
        await queue.stop_consuming()
        await worker.stop()
    finally:
        await queue.close()
    rows = [EventRow(**{c: getattr(e, c) for c in COLUMNS}) for e in events]
    async with db.pool.acquire() as conn:
        await conn.execute("CREATE TABLE plain_events (LIKE analytics_events INCLUDING DEFAULTS);"
                           "ALTER TABLE plain_events ALTER COLUMN props TYPE text")
        t0 = time.monotonic()
        for i in range(0, n, 5000):
            await conn.copy_records_to_table("plain_events", columns=COLUMNS,
                                             records=[r.staged() for r in rows[i:i + 5000]])
        copy_s = time.monotonic() - t0
    return {"pipeline_eps": n / drain_s, "copy_eps": n / copy_s, "publish_eps": n / publish_s,
            "publish_cpu_pct": 100 * publish_cpu / publish_s}


async def seed(db: Database, n: int) -> None:
    today = utc_now().date()
    days = [today - timedelta(days=d) for d in range(SEED_DAYS)]
    await create_partitions(db, days)
    users = [uuid.uuid4() for _ in range(max(10, n // 50))]
    per_day = n // SEED_DAYS
    written = 0
    async with db.pool.acquire() as conn:
        for day in days:
            base = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
            for start in range(0, per_day, CHUNK):
                rows = []
                for _ in range(min(CHUNK, per_day - start)):
                    at = base + timedelta(seconds=random.randrange(86400))
                    rows.append((uuid.uuid4(), random.choice(NAMES), "server", at, at,
                                 random.choice(users), None, None, None, None, None))
                # Straight into the day's partition: no staging, no roll-up per batch.
                # props keeps its '{}' default: the binary COPY has no jsonb encoder.
                await conn.copy_records_to_table(
                    partition_name(day), columns=[c for c in COLUMNS if c != "props"],
                    records=rows)
                written += len(rows)
            log(f"seeded {written}/{per_day * SEED_DAYS} events")
        await conn.execute(
            """INSERT INTO analytics_rollup_day (bucket, name, subject_type, subject_id,
                   owner_id, count)
               SELECT date_trunc('day', occurred_at, 'UTC'), name, NULL, NULL, NULL, count(*)
               FROM analytics_events GROUP BY 1, 2
               ON CONFLICT (bucket, name, subject_type, subject_id, owner_id)
               DO UPDATE SET count = analytics_rollup_day.count + EXCLUDED.count""")
        await conn.execute("ANALYZE")


async def latencies(db: Database, repeat: int) -> list[list[str]]:
    now = utc_now()
    cases: dict[str, Callable[[], Awaitable[Any]]] = {
        "active users, 30 days": lambda: reports.active_users_report(db, now, 90, 30),
        "retention, 4 weeks": lambda: reports.retention_report(db, now, 90, 4),
        "sign-up funnel, 30 days": lambda: reports.signup_funnel_report(db, now, 90, 30),
        "activity, 30 days": lambda: reports.activity_report(db, now, 90, 30),
    }
    rows = [["report", "p50 ms", "p99 ms", "runs"]]
    for label, run in cases.items():
        took = []
        for _ in range(repeat):
            t0 = time.monotonic()
            await run()
            took.append((time.monotonic() - t0) * 1000)
        took.sort()
        rows.append([label, f"{percentile(took, 50):.1f}", f"{percentile(took, 99):.1f}",
                     str(repeat)])
        log(f"{label}: p50 {percentile(took, 50):.1f} ms")
    return rows


async def run(events: int, seeded: int, repeat: int) -> tuple[dict[str, float], list[list[str]]]:
    namespace = f"abench{secrets.token_hex(4)}"
    db_name = f"hotspot_abench_{secrets.token_hex(4)}"
    steps: list[tuple[str, Any]] = []
    try:
        dsn = await create_database(db_name)
        steps.append((f"drop database {db_name}", lambda: drop_database(db_name)))
        steps.append((f"delete RabbitMQ queues {namespace}.*", lambda: drop_queues(namespace)))
        await migrate(dsn)
        db = await Database.connect(dsn, 2, 6)
        steps.insert(0, ("close the database pool", db.close))
        rates = await pipeline(db, namespace, events)
        await db.pool.execute("TRUNCATE analytics_events, analytics_rollup_minute, "
                              "analytics_rollup_hour, analytics_rollup_day")
        await seed(db, seeded)
        return rates, await latencies(db, repeat)
    finally:
        await run_cleanup(steps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.analytics",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small, fast run (smoke check)")
    parser.add_argument("--events", type=int, help="events through the pipeline (200k; quick 20k)")
    parser.add_argument("--seed", type=int, help="events seeded for the reports (10M; quick 200k)")
    parser.add_argument("--repeat", type=int, help="runs per report (50; quick 10)")
    parser.add_argument("--docs", type=Path, help=f"write the markdown here (default {DOCS})")
    args = parser.parse_args(argv)
    events = args.events or (20_000 if args.quick else 200_000)
    seeded = args.seed or (200_000 if args.quick else 10_000_000)
    repeat = args.repeat or (10 if args.quick else 50)
    load = report.machine_load_warning(log)
    rates, table = asyncio.run(run(events, seeded, repeat))
    ratio = rates["pipeline_eps"] / rates["copy_eps"]
    lines = [
        f"pipeline (RabbitMQ -> worker -> partitions + roll-ups): {rates['pipeline_eps']:,.0f} events/s",
        f"plain COPY into an unindexed table: {rates['copy_eps']:,.0f} events/s",
        f"ratio pipeline / COPY: {ratio:.2f}",
        f"load generator: published {rates['publish_eps']:,.0f} events/s before the worker "
        f"started, at {rates['publish_cpu_pct']:.0f} % of one core",
    ]
    print("\n".join(lines) + "\n\n" + report.text_table(table))
    docs = args.docs or DOCS
    command = ".venv/bin/python -m bench.analytics " + shlex.join(
        sys.argv[1:] if argv is None else argv)
    kind = ("QUICK SMOKE RUN on a busy machine (other test runs shared the 2 cores): the "
            "numbers show the benchmark works, not what the code can do" if args.quick
            else "full run")
    docs.write_text(
        f"# Benchmark: analytics pipeline and admin reports\n\n"
        f"{kind}. Command: `{command.strip()}`; {events:,} pipeline events, {seeded:,} seeded "
        f"events over {SEED_DAYS} days; load average at start {load}.\n\n"
        + "\n".join(f"- {line}" for line in lines) + "\n\n"
        + report.markdown_table(table) + "\n")
    log(f"wrote {docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
