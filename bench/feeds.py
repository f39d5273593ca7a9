"""Home feed benchmark: HotSpot's GET /v1/feeds/home against a bare aiohttp JSON endpoint, same request rate.

    .venv/bin/python -m bench.feeds [--quick] [--reuse] [--keep] [--rate N] [--duration S]
                                    [--rounds N] [--wait-quiet S] [--docs FILE]

Seeds its own PostgreSQL database (bench/feeds_seed.py: 10,000 users with a power-law
follow graph, friendships, private accounts, mutes, blocks, cliques and 1,000,000 items;
--quick: 2,000 users, 100,000 items) with COPY, then starts `hotspot serve` on it and a
bare aiohttp server answering one static page of the same size (bench.feeds --baseline:
it checks the bearer token, then returns the bytes). Both are driven open-loop at the
same steady rate: requests leave on a fixed schedule whatever the answers do, from
viewers drawn at random among the seeded users, a share of them following the
next_cursor of that viewer's previous page. Latency counts from the scheduled send, so
a stalled server is charged for the queue it builds. Rounds alternate the servers.
Prints a table and, for full runs, writes docs/benchmarks-feeds.md. The database is
dropped at the end unless --keep or --reuse (which reuses an already seeded one).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import shlex
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import jwt
import orjson
from aiohttp import web

from bench import report
from bench.common import free_port, log, percentile, process_cpu_s
from bench.feeds_seed import GraphStats, SeedSizes, seed
from bench.realtime import wait_quiet
from bench.servers import (
    ADMIN_DSN,
    BENCH_OVERRIDES,
    ROOT,
    HotSpot,
    ServerProcess,
    drop_database,
    drop_queues,
    drop_redis_keys,
    run_cleanup,
)
from storage.migrate import migrate

DOCS = ROOT / "docs" / "benchmarks-feeds.md"
# Text after this line in the docs page is written by hand and kept when a run rewrites it.
KEEP_MARKER = "<!-- Everything below this line is kept when bench.feeds rewrites the file. -->"
PATH = "/v1/feeds/home"
ISSUER = "hotspot"
# A share of requests continues the viewer's previous page (scrolling), the rest start anew.
CURSOR_SHARE = 0.3


@dataclass(frozen=True)
class Settings:
    seed: SeedSizes
    rate: float
    duration_s: float
    warmup_s: float
    rounds: int
    viewers: int


# 100 requests/s: what HotSpot sustains with room to spare on the 2-core machine of
# docs/benchmarks-feeds.md (it saturates near 160/s there); --rate changes it.
FULL = Settings(SeedSizes(users=10_000, items=1_000_000, cliques=60), rate=100, duration_s=30,
                warmup_s=5, rounds=2, viewers=5000)
QUICK = Settings(SeedSizes(users=2_000, items=100_000, cliques=12), rate=100, duration_s=5,
                 warmup_s=2, rounds=1, viewers=1000)


@dataclass
class Phase:
    """One server's measured requests (all rounds together)."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    bytes: int = 0
    items: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0

    def summary(self) -> dict[str, float]:
        lat = sorted(self.latencies_ms)
        ok = max(len(lat), 1)
        return {"requests": self.sent, "errors": sum(self.errors.values()),
                "rate": self.sent / self.wall_s if self.wall_s else 0.0,
                "p50": percentile(lat, 50), "p90": percentile(lat, 90),
                "p99": percentile(lat, 99), "max": lat[-1] if lat else float("nan"),
                "bytes": self.bytes / ok, "items": self.items / ok,
                "cpu_ms": 1000 * self.cpu_s / max(self.sent, 1)}


@dataclass(frozen=True)
class Viewer:
    id: str
    token: str


def mint_token(secret: str, user_id: str) -> str:
    """An access token as HotSpot issues them (sessions are only checked for revocation)."""
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": user_id, "sid": str(uuid.uuid4()), "scopes": ["*"],
              "iat": now, "exp": now + 7200, "jti": secrets.token_urlsafe(12)}
    return jwt.encode(claims, secret, algorithm="HS256")


# -- the baseline server -----------------------------------------------------------------


def baseline_app(secret: str, page: bytes) -> web.Application:
    """GET /v1/feeds/home: check the bearer token like any real endpoint, answer the static page."""
    async def home(request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        try:
            jwt.decode(token, secret, algorithms=["HS256"], issuer=ISSUER,
                       options={"require": ["sub", "sid", "exp"]})
        except jwt.PyJWTError:
            return web.json_response({"error": {"code": "unauthorized"}}, status=401)
        return web.Response(body=page, content_type="application/json")

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get(PATH, home)
    app.router.add_get("/health", health)
    return app


# -- load ----------------------------------------------------------------------------------


async def drive(http: aiohttp.ClientSession, url: str, viewers: list[Viewer], rate: float,
                duration_s: float, rng: random.Random, phase: Phase | None,
                cursors: dict[str, str]) -> None:
    """Open loop: request i leaves at start + i / rate, whatever earlier answers did."""
    count = int(rate * duration_s)
    start = time.monotonic() + 0.2
    tasks: list[asyncio.Task[None]] = []

    async def one(viewer: Viewer, cursor: str | None, scheduled: float) -> None:
        params = {"cursor": cursor} if cursor else None
        headers = {"Authorization": f"Bearer {viewer.token}"}
        try:
            async with http.get(url + PATH, params=params, headers=headers) as resp:
                body = await resp.read()
                status = resp.status
        except aiohttp.ClientError as exc:
            if phase is not None:
                phase.errors[type(exc).__name__] = phase.errors.get(type(exc).__name__, 0) + 1
            return
        elapsed_ms = (time.monotonic() - scheduled) * 1000
        if status != 200:
            if phase is not None:
                phase.errors[str(status)] = phase.errors.get(str(status), 0) + 1
            return
        page = orjson.loads(body)
        if page.get("next_cursor"):
            cursors[viewer.id] = page["next_cursor"]
        else:
            cursors.pop(viewer.id, None)
        if phase is not None:
            phase.latencies_ms.append(elapsed_ms)
            phase.bytes += len(body)
            phase.items += len(page.get("items", ()))

    for i in range(count):
        scheduled = start + i / rate
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        viewer = rng.choice(viewers)
        cursor = cursors.get(viewer.id) if rng.random() < CURSOR_SHARE else None
        tasks.append(asyncio.create_task(one(viewer, cursor, scheduled)))
    await asyncio.gather(*tasks)
    if phase is not None:
        phase.sent += count
        phase.wall_s += time.monotonic() - start


async def measure(targets: dict[str, tuple[str, int]], viewers: list[Viewer],
                  settings: Settings) -> dict[str, Phase]:
    """Warm both servers up, then run the rounds, alternating which server goes first."""
    rng = random.Random(7)
    phases = {label: Phase() for label in targets}
    connector = aiohttp.TCPConnector(limit=512, limit_per_host=512)
    async with aiohttp.ClientSession(connector=connector) as http:
        for label, (url, _) in targets.items():
            log(f"warming up {label} for {settings.warmup_s:.0f} s")
            await drive(http, url, viewers, settings.rate, settings.warmup_s, rng, None, {})
        order = list(targets)
        for n in range(settings.rounds):
            for label in order if n % 2 == 0 else reversed(order):
                url, pid = targets[label]
                log(f"round {n + 1}/{settings.rounds}: {label}, {settings.rate:.0f} req/s for "
                    f"{settings.duration_s:.0f} s")
                cpu_before = process_cpu_s(pid)
                await drive(http, url, viewers, settings.rate, settings.duration_s, rng,
                            phases[label], {})
                phases[label].cpu_s += process_cpu_s(pid) - cpu_before
    return phases


# -- report ----------------------------------------------------------------------------------


def _fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def result_table(phases: dict[str, Phase]) -> list[list[str]]:
    hs, base = phases["hotspot"].summary(), phases["baseline"].summary()
    rows = [["metric", "HotSpot feed.list_home", "bare aiohttp, static page", "ratio (HotSpot/bare)"]]
    for title, key, digits in (("latency p50 (ms)", "p50", 1), ("latency p90 (ms)", "p90", 1),
                               ("latency p99 (ms)", "p99", 1), ("latency max (ms)", "max", 1),
                               ("server CPU per request (ms)", "cpu_ms", 2)):
        ratio = hs[key] / base[key] if base[key] else float("nan")
        rows.append([title, _fmt(hs[key], digits), _fmt(base[key], digits), _fmt(ratio, 2)])
    for title, key, digits in (("requests measured", "requests", 0), ("errors", "errors", 0),
                               ("achieved rate (req/s)", "rate", 1), ("items per page", "items", 1),
                               ("bytes per page", "bytes", 0)):
        rows.append([title, _fmt(hs[key], digits), _fmt(base[key], digits), ""])
    return rows


def write_docs(path: Path, *, cells: list[list[str]], settings: Settings, stats: GraphStats,
               seed_s: float | None, command: str, date: str, load_avg: str,
               explain: str) -> None:
    kept = path.read_text().split(KEEP_MARKER, 1)[1].lstrip("\n") if path.exists() and \
        KEEP_MARKER in path.read_text() else ""
    info = report.machine()
    sizes = settings.seed
    seeding = "reused an already seeded database" if seed_s is None else f"seeding took {seed_s:.0f} s"
    text = f"""# Home feed benchmark

Made by `{command}` on {date}
(cpu: {info["cpu"]}, memory: {info["memory"]}, os: {info["os"]}, python: {info["python"]},
load average at start: {load_avg}; {seeding}).

{report.markdown_table(cells)}

Both servers get the same open-loop schedule: {settings.rate:.0f} requests/s for
{settings.duration_s:.0f} s per round, {settings.rounds} rounds alternating which server goes
first, after a {settings.warmup_s:.0f} s warm-up each. Latency runs from the scheduled send
to the last byte of the answer. Requests come from {settings.viewers:,} viewers drawn at
random among the seeded users; {CURSOR_SHARE:.0%} of requests follow the next_cursor of the
viewer's previous page.

- **HotSpot**: `hotspot serve` (one process, in-process workers, idle here) on the seeded
  database; `GET /v1/feeds/home` runs the feed query (docs/feeds.md) and hydrates the page
  (authors, media, the viewer's reactions/saves/shares, mentions, tags, embedded items).
- **bare aiohttp**: one aiohttp process whose handler checks the HS256 bearer token and
  returns the bytes of a real HotSpot page (20 items): the cost of HTTP, JSON transfer and
  auth alone, with no database.

## Data

{sizes.users:,} users and {sizes.items:,} items ({stats.extra.get("top_level_items", 0):,}
top-level: posts, notices, shares, slides, stories; {stats.extra.get("comments", 0):,}
comments), spread over 90 days; {sizes.cliques} cliques. Follow graph: {stats.follows:,}
follows, Pareto popularity (largest account {stats.followers_max:,} followers,
{stats.accounts_1000_followers} accounts with 1,000 or more), log-normal out-degree
(median {stats.followees_p50} followees, p99 {stats.followees_p99}, max {stats.followees_max});
{stats.friendships:,} friendships; {stats.private_users:,} private accounts; items 78% public,
12% followers, 6% friends, 2% close friends, 2% private; mutes, blocks, clique bans;
{stats.extra.get("tagged_items", 0):,} tagged items. Generated by bench/feeds_seed.py
(fixed random seed) and loaded with COPY.

## Plan of the home query

`EXPLAIN (ANALYZE, BUFFERS)` of the first page's query (a batch of 41 candidates: a page of
20, one more and 20 spare, walked until 21 are visible) for the viewer following the most
accounts:

```
{explain}
```

HotSpot settings changed for the benchmark: {BENCH_OVERRIDES}.

{KEEP_MARKER}

{kept}"""
    path.write_text(text.rstrip("\n") + "\n")


# -- orchestration ----------------------------------------------------------------------------


async def database(name: str, sizes: SeedSizes, reuse: bool) -> tuple[str, float | None, GraphStats]:
    """The DSN of a seeded database; seeding time (None if reused)."""
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        dsn = f"{ADMIN_DSN.rsplit('/', 1)[0]}/{name}"
        if exists and reuse:
            conn = await asyncpg.connect(dsn)
            try:
                marker = await conn.fetchrow(
                    "SELECT users, items, stats FROM bench_seed WHERE users = $1 AND items = $2",
                    sizes.users, sizes.items)
            except asyncpg.UndefinedTableError:
                marker = None
            finally:
                await conn.close()
            if marker is not None:
                log(f"reusing the seeded database {name}")
                await migrate(dsn)
                return dsn, None, GraphStats(**orjson.loads(marker["stats"]))
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    await migrate(dsn)
    started = time.monotonic()
    conn = await asyncpg.connect(dsn)
    try:
        stats = await seed(conn, sizes)
        await conn.execute("CREATE TABLE bench_seed (users int, items int, stats text)")
        await conn.execute("INSERT INTO bench_seed VALUES ($1, $2, $3)", sizes.users, sizes.items,
                           orjson.dumps(asdict(stats)).decode())
    finally:
        await conn.close()
    return dsn, time.monotonic() - started, stats


async def explain_home(dsn: str) -> str:
    """EXPLAIN ANALYZE of the home query's first batch for the viewer with the most follows."""
    from storage.feeds import END, HOME_CLIQUES_MAX, HOME_SOURCES_MAX, HOME_SQL

    conn = await asyncpg.connect(dsn)
    try:
        viewer = await conn.fetchval(
            "SELECT follower_id FROM follows GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")
        args = (viewer, END[0], END[1], datetime.now(UTC), 41, 21, HOME_SOURCES_MAX,
                HOME_CLIQUES_MAX)
        await conn.fetch(HOME_SQL, *args)  # warm the cache
        rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + HOME_SQL, *args)
        return "\n".join(r[0] for r in rows)
    finally:
        await conn.close()


async def sample_page(url: str, viewers: list[Viewer]) -> bytes:
    """A full first page from HotSpot, to be the baseline's static answer."""
    async with aiohttp.ClientSession() as http:
        for viewer in viewers:
            async with http.get(url + PATH, headers={"Authorization": f"Bearer {viewer.token}"}) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"HotSpot answered {resp.status}: {body[:300]!r}")
            if len(orjson.loads(body)["items"]) == 20:
                return body
    raise RuntimeError("no viewer has a full page")


async def benchmark(args: argparse.Namespace, settings: Settings, work_dir: Path) -> dict[str, Any]:
    token = secrets.token_hex(4)
    namespace, secret = f"benchfeed{token}", secrets.token_urlsafe(48)
    db_name = args.database or ("hotspot_bench_feeds_quick" if args.quick else "hotspot_bench_feeds")
    keep = args.keep or args.reuse
    running: list[ServerProcess] = []
    created = False
    try:
        dsn, seed_s, stats = await database(db_name, settings.seed, args.reuse)
        created = True
        explain = await explain_home(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            ids = sorted(str(r["id"]) for r in await conn.fetch("SELECT id FROM users"))
        finally:
            await conn.close()
        rng = random.Random(11)
        viewers = [Viewer(u, mint_token(secret, u))
                   for u in rng.sample(ids, min(settings.viewers, len(ids)))]
        hotspot = HotSpot(dsn=dsn, namespace=namespace, jwt_secret=secret, work_dir=work_dir,
                          inprocess_workers=True)
        running.extend(hotspot.processes)
        await hotspot.start()
        page = await sample_page(hotspot.server.url, viewers)
        (work_dir / "page.json").write_bytes(page)
        port = free_port()
        baseline = ServerProcess(
            "baseline-feed", [sys.executable, "-m", "bench.feeds", "--baseline", "--port", str(port),
                              "--page", str(work_dir / "page.json")],
            {**os.environ, "BENCH_JWT_SECRET": secret}, work_dir, port, "/health")
        running.append(baseline)
        await baseline.start()
        phases = await measure({"hotspot": (hotspot.server.url, hotspot.server.pid),
                                "baseline": (baseline.url, baseline.pid)}, viewers, settings)
        return {"phases": phases, "stats": stats, "seed_s": seed_s, "explain": explain}
    finally:
        steps: list[tuple[str, Any]] = [(f"stop {p.name}", p.stop) for p in reversed(running)]
        if created and not keep:
            steps.append((f"drop database {db_name}", lambda: drop_database(db_name)))
        steps.append((f"delete RabbitMQ queues {namespace}.*", lambda: drop_queues(namespace)))
        steps.append((f"delete Redis keys {namespace}:*", lambda: drop_redis_keys(namespace)))
        await run_cleanup(steps)
        log("cleaned up" + (f" (database {db_name} kept)" if keep else ""))


def serve_baseline(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.feeds --baseline")
    parser.add_argument("--baseline", action="store_true")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--page", type=Path, required=True)
    args = parser.parse_args(argv)
    app = baseline_app(os.environ["BENCH_JWT_SECRET"], args.page.read_bytes())
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--baseline" in argv:
        return serve_baseline(argv)
    parser = argparse.ArgumentParser(prog="python -m bench.feeds", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 users, 100,000 items, short run")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the database if it is already seeded with these sizes (and keep it)")
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    parser.add_argument("--database", help="database name (default hotspot_bench_feeds[_quick])")
    parser.add_argument("--rate", type=float, help="requests per second")
    parser.add_argument("--duration", type=float, help="seconds measured per server and round")
    parser.add_argument("--rounds", type=int, help="rounds per server")
    parser.add_argument("--docs", type=Path, help=f"write the markdown here (full runs: {DOCS})")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="first wait up to this long for the machine to be idle (shared machines)")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    for name, value in (("rate", args.rate), ("duration_s", args.duration), ("rounds", args.rounds)):
        if value is not None:
            settings = Settings(**{**settings.__dict__, name: value})
    docs = args.docs if args.docs is not None else (None if args.quick else DOCS)
    if args.wait_quiet > 0:
        wait_quiet(args.wait_quiet)
    with open("/proc/loadavg") as f:
        load_avg = " ".join(f.read().split()[:3])
    work_dir = Path(tempfile.mkdtemp(prefix="hotspot-bench-feeds-"))
    started = datetime.now(UTC)
    try:
        out = asyncio.run(benchmark(args, settings, work_dir))
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    cells = result_table(out["phases"])
    print(report.text_table(cells))
    for label, phase in out["phases"].items():
        if phase.errors:
            log(f"warning: {label} errors: {phase.errors}")
    if docs is not None:
        command = ".venv/bin/python -m bench.feeds " + shlex.join(argv)
        write_docs(docs, cells=cells, settings=settings, stats=out["stats"], seed_s=out["seed_s"],
                   command=command.strip(), date=started.strftime("%Y-%m-%d %H:%M UTC"),
                   load_avg=load_avg, explain=out["explain"])
        log(f"wrote {docs}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
