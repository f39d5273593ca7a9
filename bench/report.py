"""The results table (terminal and markdown) and docs/benchmarks.md."""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

# Text after this line in docs/benchmarks.md is written by hand and kept across runs.
KEEP_MARKER = "<!-- Everything below this line is kept when bench.realtime rewrites the file. -->"
SERVER_GROUPS = ("serve", "worker", "baseline")
CPU_GROUPS = ("serve", "worker", "baseline", "postgres", "redis", "rabbitmq")

Results = dict[str, dict[str, Any]]  # server label -> phase -> the load generator's result


@dataclass(frozen=True)
class Row:
    metric: str
    value: Callable[[dict[str, Any]], float | None]
    digits: int = 0


def _server_cpu(phase: dict[str, Any]) -> float:
    groups = phase["cpu"]["groups_s"]
    return float(sum(groups.get(g, 0.0) for g in SERVER_GROUPS))


def _stack_cpu(phase: dict[str, Any]) -> float:
    """The servers plus PostgreSQL, Redis and RabbitMQ (shared services: other tenants count too)."""
    groups = phase["cpu"]["groups_s"]
    return float(sum(groups.get(g, 0.0) for g in CPU_GROUPS))


def _per(phase: dict[str, Any], seconds: float, unit: int) -> float | None:
    """CPU milliseconds per `unit` deliveries counted in the window."""
    count = phase.get("deliveries_per_s", phase.get("messages_per_s", 0.0)) * phase["duration_s"]
    return seconds * 1000 * unit / count if count else None


def rows(settings: dict[str, Any]) -> list[Row]:
    pairs, members, idle = settings["pairs"], settings["members"], settings["idle_sockets"]
    return [
        Row(f"DM throughput, {pairs} pairs (messages/s)", lambda r: r["dm"]["messages_per_s"]),
        Row("DM delivery latency p50 (ms)", lambda r: r["dm"]["latency"]["p50_ms"], 1),
        Row("DM delivery latency p99 (ms)", lambda r: r["dm"]["latency"]["p99_ms"], 1),
        Row(f"Fan-out into a {members:,}-member group (deliveries/s)",
            lambda r: r["fanout"]["deliveries_per_s"]),
        Row(f"Server memory per idle connection (KiB, {idle:,} sockets)",
            lambda r: r["memory"]["kib_per_socket"], 1),
        Row("Server CPU per DM (ms)", lambda r: _per(r["dm"], _server_cpu(r["dm"]), 1), 2),
        Row("Stack CPU per DM (ms; + PostgreSQL, Redis, RabbitMQ)",
            lambda r: _per(r["dm"], _stack_cpu(r["dm"]), 1), 2),
        Row("Server CPU per 1,000 fan-out deliveries (ms)",
            lambda r: _per(r["fanout"], _server_cpu(r["fanout"]), 1000), 1),
    ]


def _fmt(value: float | None, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def table(results: Results, settings: dict[str, Any]) -> list[list[str]]:
    """[metric, HotSpot, baseline, ratio] rows, header first."""
    out = [["metric", "HotSpot", "baseline", "ratio (HotSpot/baseline)"]]
    for row in rows(settings):
        hs, base = (_value(row, results.get(label)) for label in ("hotspot", "baseline"))
        ratio = hs / base if hs is not None and base else None
        out.append([row.metric, _fmt(hs, row.digits), _fmt(base, row.digits), _fmt(ratio, 2)])
    return out


def _value(row: Row, result: dict[str, Any] | None) -> float | None:
    if result is None:
        return None
    try:
        return row.value(result)
    except (KeyError, TypeError, ZeroDivisionError):
        return None


def text_table(cells: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    lines = []
    for n, r in enumerate(cells):
        padded = [c.ljust(w) if i == 0 else c.rjust(w)
                  for i, (c, w) in enumerate(zip(r, widths, strict=True))]
        lines.append(" | ".join(padded))
        if n == 0:
            lines.append("-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(cells: list[list[str]]) -> str:
    lines = ["| " + " | ".join(cells[0]) + " |", "|---|" + "---:|" * (len(cells[0]) - 1)]
    lines += ["| " + " | ".join(r) + " |" for r in cells[1:]]
    return "\n".join(lines)


LATENCY_STAGES = (
    ("send -> created_at (HotSpot: the storing transaction began)", "stored_latency"),
    ("send -> ack at the sender", "ack_latency"),
    ("send -> message.new at the peer", "latency"),
)


def latency_breakdown(results: Results) -> list[list[str]]:
    """DM latency by stage, p50 / p99 in ms."""
    labels = [label for label in ("hotspot", "baseline") if label in results]
    out = [["DM latency stage (p50 / p99 ms)", *("HotSpot" if lb == "hotspot" else lb for lb in labels)]]
    for title, key in LATENCY_STAGES:
        cells = []
        for label in labels:
            stage = results[label].get("dm", {}).get(key) or {}
            cells.append(f"{_fmt(stage.get('p50_ms'), 1)} / {_fmt(stage.get('p99_ms'), 1)}")
        out.append([title, *cells])
    return out


def cpu_breakdown(results: Results) -> list[list[str]]:
    """Cores busy per process group during each measured window (1.00 = one core all the time)."""
    header = ["server, phase", *CPU_GROUPS, "load generator", "rest of machine"]
    out = [header]
    for label, phases in results.items():
        for phase_name in ("dm", "fanout"):
            cpu = phases.get(phase_name, {}).get("cpu")
            if not cpu:
                continue
            wall, groups = cpu["wall_s"], cpu["groups_s"]
            known = sum(groups.get(g, 0.0) for g in CPU_GROUPS)
            cells = [_fmt(groups[g] / wall, 2) if g in groups else "-" for g in CPU_GROUPS]
            out.append([f"{label}, {phase_name}", *cells, _fmt(cpu["load_s"] / wall, 2),
                        _fmt(max(cpu["stack_s"] - known, 0.0) / wall, 2)])
    return out


def sanity_lines(results: Results) -> list[str]:
    """Errors, lost or duplicated deliveries and failed connections, per server and phase."""
    lines = []
    for label, phases in results.items():
        for name, phase in phases.items():
            problems = {k: phase[k] for k in ("missing", "duplicates", "connect_failures")
                        if phase.get(k)}
            if phase.get("errors"):
                problems["errors"] = phase["errors"]
            if problems:
                lines.append(f"{label} {name}: {problems}")
    return lines


CLIENT_BOUND_CORES = 0.9


def client_bound_lines(results: Results) -> list[str]:
    """Windows where the load generator used (nearly) a whole core: the rate is a lower bound."""
    lines = []
    for label, phases in results.items():
        for name in ("dm", "fanout"):
            cpu = phases.get(name, {}).get("cpu")
            cores = cpu["load_s"] / cpu["wall_s"] if cpu else 0.0
            if cores >= CLIENT_BOUND_CORES:
                lines.append(f"{label} {name}: the load generator used {cores:.2f} of a core, so this "
                             "rate is limited by the clients (a lower bound for the server)")
    return lines


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                       cpu)
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in
                         ("python-socketio", "python-engineio", "aiohttp", "asyncpg", "aio-pika", "redis"))
    return {"cpu": f"{cpu}, {os.cpu_count()} cores", "memory": f"{mem_gib:.1f} GiB",
            "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "packages": versions}


def write_markdown(path: Path, *, results: Results, settings: dict[str, Any], command: str,
                   date: str, overrides: dict[str, str], workers: str, load_avg: str) -> None:
    kept = ""
    if path.exists():
        old = path.read_text()
        if KEEP_MARKER in old:
            kept = old.split(KEEP_MARKER, 1)[1].lstrip("\n")
    info = machine()
    problems = sanity_lines(results)
    text = f"""# Benchmarks

HotSpot (persistence on) against a bare python-socketio server doing the same emits
with no persistence (`bench/baseline_server.py`), driven in one run by the same
python-socketio clients. Regenerate with `make bench` (this file is rewritten; see the
end for what is kept).

- Date: {date}
- Command: `{command}`
- Machine: {info['cpu']}, {info['memory']} RAM, {info['os']}, Python {info['python']}
- Packages: {info['packages']}
- Load average before the run: {load_avg}
- HotSpot: `hotspot serve` with {workers};
  PostgreSQL, Redis and RabbitMQ on 127.0.0.1 (a fresh database and a unique namespace,
  removed afterwards)
- Settings: {settings['pairs']} DM pairs; a {settings['members']:,}-member group with \
{settings['senders']} senders, {settings['inflight_per_sender']} sends in flight each (at most \
{settings['backlog']} messages not yet delivered to everyone); {settings['idle_sockets']:,} idle \
sockets; {settings['warmup_s']:g} s warm-up and {settings['duration_s']:g} s measured per phase

## Results

{markdown_table(table(results, settings))}

{"Sanity problems: " + "; ".join(problems) if problems else
 "Every acknowledged message reached every receiver exactly once; no send failed."}
{"".join(chr(10) + "- " + line for line in client_bound_lines(results))}

## DM latency by stage

{markdown_table(latency_breakdown(results))}

created_at is the server's clock (PostgreSQL's now() for HotSpot, the emit time for the
baseline) against the sender's wall clock on the same machine.

## Where the CPU went (cores busy during the measured window)

{markdown_table(cpu_breakdown(results))}

## How it is measured

- One load-generator process (asyncio, python-socketio `AsyncClient`, websocket
  transport, one socket per user, each authenticated with its access token) runs each
  phase; the servers run in their own processes, both started before the first phase;
  each phase measures HotSpot and then the baseline, so the two measurements are about a
  minute apart. Everything is on 127.0.0.1.
- DM: in each pair one user sends `message.send` in a closed loop (the next send
  after the ack); throughput counts `message.new` received by the peers' sockets in
  the window; latency is from just before the send to receipt at the peer's socket.
- Fan-out: every member's socket is connected; each sender runs
  {settings['inflight_per_sender']} closed loops (so the rate is not bound by one send's
  latency), all holding back while more than {settings['backlog']} messages are not yet
  delivered to every member (so queues stay bounded); deliveries are counted across all
  members' sockets, the senders' own included. Fan-out latency is not reported: with
  the senders keeping the pipeline full it is the backlog divided by the rate.
- Memory: VmRSS of the server process (`hotspot serve`, or the baseline) after a
  few warm-up sockets, then after {settings['idle_sockets']:,} more idle
  authenticated sockets (settled for {settings['settle_s']:g} s), divided by their number.
- CPU: /proc counters of the server processes, PostgreSQL backends, Redis and RabbitMQ
  (beam.smp) over the window; "stack" is their sum. "Rest of machine" is every other
  busy CPU second (other tenants of the machine show there; PostgreSQL and RabbitMQ are
  shared services, so other tenants' use of them counts in their columns). The machine
  has {os.cpu_count()} cores shared by everything, so a row
  where the load generator is near 1.00 core is limited by the clients, and the CPU
  per delivery rows compare the servers' efficiency regardless.
- Users sign up over REST (`POST /v1/auth/signup`); DMs and the group are written
  with `storage.conversations` (insert_conversation, upsert_members). The baseline
  checks the same JWTs and gets the memberships from a file at start.
- HotSpot settings changed for the benchmark (stated because they matter):
{chr(10).join(f"  - `{k}={v}`" for k, v in overrides.items())}

{KEEP_MARKER}

{kept}"""
    path.write_text(text.rstrip() + "\n")


def machine_load_warning(log: Callable[[str], None]) -> str:
    """The load average, warning on stderr when the machine is too busy for clean numbers."""
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    if float(load.split()[0]) > 0.5 * (os.cpu_count() or 1):
        log(f"warning: the machine is busy (load average {load}); numbers will be noisy")
    return load
