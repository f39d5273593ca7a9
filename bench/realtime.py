"""Realtime benchmark: HotSpot (persistence on) against a bare python-socketio server, in one run.

    .venv/bin/python -m bench.realtime [--quick] [--profile DIR]

Starts every server itself on 127.0.0.1 (HotSpot: `hotspot serve` and a separate
`hotspot worker persistence`, on a fresh PostgreSQL database, Redis and RabbitMQ under
a unique namespace; the baseline: bench/baseline_server.py), signs users up, then runs
three phases, each against one server and then the other, from a separate load-generator
process (bench/load.py): server memory per idle connection, DM throughput and latency
with closed-loop pairs, and fan-out deliveries per second into one big group. Prints one table and (full
runs) writes it to docs/benchmarks.md. Everything it creates is removed at the end,
also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench import report
from bench.common import log, machine_busy_s, raise_fd_limit
from bench.fixtures import Conversations, User, create_conversations, sign_up
from bench.servers import (
    BENCH_OVERRIDES,
    ROOT,
    HotSpot,
    ServerProcess,
    baseline_process,
    create_database,
    die_with_parent,
    drop_database,
    drop_queues,
    drop_redis_keys,
    run_cleanup,
)

DOCS = ROOT / "docs" / "benchmarks.md"


@dataclass(frozen=True)
class Settings:
    idle_sockets: int
    warm_sockets: int
    pairs: int
    members: int
    senders: int
    inflight_per_sender: int
    backlog: int
    warmup_s: float
    duration_s: float
    settle_s: float
    concurrency: int

    @property
    def users(self) -> int:
        return max(self.warm_sockets + self.idle_sockets, self.members, 2 * self.pairs)


FULL = Settings(idle_sockets=2000, warm_sockets=20, pairs=50, members=1000, senders=4,
                inflight_per_sender=4, backlog=16, warmup_s=3, duration_s=20, settle_s=3,
                concurrency=64)
QUICK = Settings(idle_sockets=200, warm_sockets=10, pairs=10, members=100, senders=2,
                 inflight_per_sender=4, backlog=16, warmup_s=1, duration_s=3, settle_s=1,
                 concurrency=32)


class Profiler:
    """py-spy on each server process during a phase's measured window (only with --profile)."""

    def __init__(self, out_dir: Path | None, native: bool = False) -> None:
        self.out_dir = out_dir
        self.native = native
        self.exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        self._running: list[asyncio.subprocess.Process] = []

    async def start(self, name: str, pids: dict[str, list[int]]) -> None:
        if self.out_dir is None:
            return
        for group, group_pids in pids.items():
            for pid in group_pids:
                out = self.out_dir / f"{name}-{group}.txt"
                # --native needs to pause the process to unwind C stacks: no --nonblocking then.
                mode = ["--native"] if self.native else ["--nonblocking"]
                self._running.append(await asyncio.create_subprocess_exec(
                    self.exe, "record", "--pid", str(pid), "--format", "raw", *mode,
                    "--rate", "250", "--output", str(out), stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, preexec_fn=die_with_parent))

    async def stop(self) -> None:
        running, self._running = self._running, []
        for proc in running:
            if proc.returncode is None:
                proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        for proc in running:
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def run_phase(phase: str, label: str, spec: dict[str, Any], work_dir: Path,
                    profiler: Profiler, settings: Settings) -> dict[str, Any]:
    """Run one phase in a load-generator process; its result."""
    log(f"{label}: {phase} phase")
    path = work_dir / f"{label}-{phase}.json"
    path.write_bytes(orjson.dumps({"phase": phase, "label": f"{label} {phase}", **spec}))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.load", str(path), cwd=ROOT, stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
    assert proc.stdout is not None
    result: dict[str, Any] | None = None
    # Connecting thousands of sockets, the phase itself and its drain, generously bounded.
    deadline = time.monotonic() + 300 + settings.warmup_s + settings.duration_s
    try:
        while True:
            line = await asyncio.wait_for(proc.stdout.readline(), max(deadline - time.monotonic(), 1))
            if not line:
                break
            message = orjson.loads(line)
            if message.get("event") == "window_start":
                await profiler.start(f"{label}-{phase}", spec["server_pids"])
            elif message.get("event") == "window_end":
                await profiler.stop()
            elif "result" in message:
                result = message["result"]
        await proc.wait()
    finally:
        await profiler.stop()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0 or result is None:
        raise RuntimeError(f"the {phase} load generator for {label} failed (exit {proc.returncode})")
    return result


@dataclass(frozen=True)
class Target:
    """A running server under test: where to connect, what to measure."""

    label: str
    url: str
    pids: dict[str, list[int]]  # CPU groups: serve and worker, or baseline
    rss_pid: int  # the process holding the sockets


def phase_specs(target: Target, users: list[User], convs: Conversations,
                settings: Settings) -> dict[str, dict[str, Any]]:
    """What the load generator needs for each phase against this server."""
    s = settings
    common = {"url": target.url, "server_pids": target.pids, "concurrency": s.concurrency,
              "warmup_s": s.warmup_s, "duration_s": s.duration_s}
    return {
        "memory": {**common, "rss_pid": target.rss_pid, "warm": s.warm_sockets,
                   "count": s.idle_sockets, "settle_s": s.settle_s,
                   "users": [asdict(u) for u in users[: s.warm_sockets + s.idle_sockets]]},
        "dm": {**common, "users": [asdict(u) for u in users[: 2 * s.pairs]],
               "pairs": [list(p) for p in convs.dms]},
        "fanout": {**common, "users": [asdict(u) for u in users[: s.members]],
                   "group_id": convs.group_id, "senders": s.senders,
                   "inflight_per_sender": s.inflight_per_sender, "backlog_messages": s.backlog},
    }


async def benchmark(args: argparse.Namespace, settings: Settings, work_dir: Path) -> report.Results:
    token = secrets.token_hex(4)
    namespace, db_name = f"bench{token}", f"hotspot_bench_{token}"
    jwt_secret = secrets.token_urlsafe(48)
    profiler = Profiler(args.profile, args.native)
    running: list[ServerProcess] = []
    hotspot: HotSpot | None = None
    db_created = False
    try:
        dsn = await create_database(db_name)
        db_created = True
        log(f"database {db_name}, namespace {namespace}, files in {work_dir}")

        def new_hotspot() -> HotSpot:
            return HotSpot(dsn=dsn, namespace=namespace, jwt_secret=jwt_secret, work_dir=work_dir,
                           inprocess_workers=args.inprocess_workers)

        # Set-up on one HotSpot, then a fresh one for the measurements, so the memory
        # freed by thousands of sign-ups cannot absorb the new connections' growth.
        hotspot = new_hotspot()
        running.extend(hotspot.processes)
        await hotspot.start()
        users = await sign_up(hotspot.server.url, settings.users, f"b{token}_")
        convs = await create_conversations(dsn, users, settings.pairs, settings.members)
        await hotspot.stop()

        # Both servers run side by side and each phase measures one, then the other, so the
        # two measurements of a phase are a minute apart and see the same machine (it may
        # be shared). Memory comes first, on fresh processes: what later phases free would
        # absorb the new sockets' growth.
        targets: list[Target] = []
        if "hotspot" in args.servers:
            hotspot = new_hotspot()
            running.extend(hotspot.processes)
            await hotspot.start()
            pids = {"serve": [hotspot.server.pid]}
            if hotspot.worker is not None:
                pids["worker"] = [hotspot.worker.pid]
            targets.append(Target("hotspot", hotspot.server.url, pids, hotspot.server.pid))
        if "baseline" in args.servers:
            members_file = work_dir / "members.json"
            members_file.write_text(json.dumps(convs.members))
            baseline = baseline_process(jwt_secret=jwt_secret, members_file=members_file,
                                        work_dir=work_dir)
            running.append(baseline)
            await baseline.start()
            targets.append(Target("baseline", baseline.url, {"baseline": [baseline.pid]},
                                  baseline.pid))
        results: report.Results = {t.label: {} for t in targets}
        specs = {t.label: phase_specs(t, users, convs, settings) for t in targets}
        for phase in args.phases:
            for target in targets:
                results[target.label][phase] = await run_phase(
                    phase, target.label, specs[target.label][phase], work_dir, profiler, settings)
                await asyncio.sleep(settings.settle_s)  # let its disconnects finish
        return results
    except Exception:
        for proc in running:
            if proc.proc is not None and proc.proc.returncode not in (None, 0, -signal.SIGTERM):
                log(f"{proc.name} log tail:\n{proc.log_tail()}")
        raise
    finally:
        steps: list[tuple[str, Any]] = [(f"stop {p.name}", p.stop) for p in reversed(running)]
        steps.append(("stop profilers", profiler.stop))
        if db_created:
            steps.append((f"drop database {db_name}", lambda: drop_database(db_name)))
        steps.append((f"delete RabbitMQ queues {namespace}.*", lambda: drop_queues(namespace)))
        steps.append((f"delete Redis keys {namespace}:*", lambda: drop_redis_keys(namespace)))
        await run_cleanup(steps)
        log("cleaned up: processes stopped, database dropped, queues and Redis keys deleted")


QUIET_CORES = 0.25


def wait_quiet(limit_s: float) -> None:
    """Wait (at most limit_s) for a 5-second stretch with under QUIET_CORES cores busy."""
    deadline = time.monotonic() + limit_s
    while True:
        before = machine_busy_s()
        time.sleep(5)
        busy = (machine_busy_s() - before) / 5
        if busy < QUIET_CORES:
            log(f"machine quiet ({busy:.2f} cores busy)")
            return
        if time.monotonic() >= deadline:
            log(f"machine still busy ({busy:.2f} cores); starting anyway")
            return
        log(f"waiting for a quiet machine: {busy:.2f} cores busy")


def load_average() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.realtime", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small, fast run (smoke check)")
    parser.add_argument("--duration", type=float, help="seconds measured per phase")
    parser.add_argument("--idle-sockets", type=int, help="idle sockets for the memory phase")
    parser.add_argument("--servers", default="hotspot,baseline",
                        help="which servers to run, comma-separated (default: both)")
    parser.add_argument("--phases", default="memory,dm,fanout",
                        help="which phases to run, comma-separated (default: all three)")
    parser.add_argument("--inprocess-workers", action="store_true",
                        help="run HotSpot's persistence worker inside `hotspot serve`")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="record py-spy profiles (raw stacks) of the servers during each window")
    parser.add_argument("--native", action="store_true",
                        help="with --profile: include native (C) frames, e.g. the garbage collector")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="first wait up to this long for the machine to be idle (shared machines)")
    parser.add_argument("--docs", type=Path,
                        help=f"write the markdown here (default for complete full runs: {DOCS})")
    args = parser.parse_args(argv)
    args.servers = _choice(parser, "--servers", args.servers, ("hotspot", "baseline"))
    args.phases = _choice(parser, "--phases", args.phases, ("memory", "dm", "fanout"))
    settings = QUICK if args.quick else FULL
    if args.duration is not None:
        settings = Settings(**{**asdict(settings), "duration_s": args.duration})
    if args.idle_sockets is not None:
        settings = Settings(**{**asdict(settings), "idle_sockets": args.idle_sockets})
    # Only a complete full run replaces the recorded results by default.
    complete = not args.quick and len(args.servers) == 2 and len(args.phases) == 3
    docs = args.docs if args.docs is not None else (DOCS if complete else None)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    # The server processes inherit this: each holds thousands of sockets.
    raise_fd_limit(settings.users * 2 + 4096)
    if args.wait_quiet > 0:
        wait_quiet(args.wait_quiet)
    load_avg = load_average()
    if float(load_avg.split()[0]) > 0.5 * (os.cpu_count() or 1):
        log(f"warning: the machine is busy (load average {load_avg}); numbers will be noisy")
    workers = ("the persistence worker (and event relay) inside it" if args.inprocess_workers else
               "a separate `hotspot worker persistence` process (persistence worker and event relay)")
    log(f"HotSpot settings changed for the benchmark: {BENCH_OVERRIDES}")
    log(f"HotSpot runs with {workers}")
    work_dir = Path(tempfile.mkdtemp(prefix="hotspot-bench-"))
    started = datetime.now(UTC)
    try:
        results = asyncio.run(_guarded(benchmark(args, settings, work_dir)))
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("interrupted; everything the run created was removed")
        return 130
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    cells = report.table(results, asdict(settings))
    print(report.text_table(cells))
    print()
    print(report.text_table(report.latency_breakdown(results)))
    print()
    print(report.text_table(report.cpu_breakdown(results)))
    for line in report.sanity_lines(results):
        log(f"warning: {line}")
    for line in report.client_bound_lines(results):
        log(f"note: {line}")
    command = ".venv/bin/python -m bench.realtime " + shlex.join(sys.argv[1:] if argv is None else argv)
    if docs is not None:
        report.write_markdown(docs, results=results, settings=asdict(settings), command=command.strip(),
                              date=started.strftime("%Y-%m-%d %H:%M UTC"), overrides=BENCH_OVERRIDES,
                              workers=workers, load_avg=load_avg)
        log(f"wrote {docs}")
    if args.profile is not None:
        log(f"py-spy profiles in {args.profile}")
    return 0


def _choice(parser: argparse.ArgumentParser, flag: str, value: str, allowed: tuple[str, ...]) -> list[str]:
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    unknown = sorted(set(chosen) - set(allowed))
    if unknown or not chosen:
        parser.error(f"{flag}: choose from {', '.join(allowed)} (got {value!r})")
    return [v for v in allowed if v in chosen]


async def _guarded(work: Any) -> Any:
    """Run the benchmark; SIGTERM cancels it like Ctrl-C, so its clean-up still runs."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await task
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
