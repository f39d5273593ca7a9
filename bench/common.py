"""Helpers shared by the benchmark's orchestrator, load generator and baseline server."""

from __future__ import annotations

import math
import os
import resource
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any

from server.sockets import OrjsonModule as SocketOrjson

# Every emitted message is "message.new" with this kind of payload; the body starts with
# the sender's CLOCK_MONOTONIC time in ns, which is the same clock in every process of
# the machine, so a receiver in another process could compute the latency too.
EVENT_NEW = "message.new"
EVENT_SEND = "message.send"
BODY_TAIL = " hello from the benchmark, a typical short chat line"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


# The load side encodes with orjson too, exactly as the server does.
OrjsonModule = SocketOrjson


def log(message: str) -> None:
    """Progress goes to stderr, so stdout stays clean for results."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft open-files limit towards `wanted` (at most the hard limit); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return int(soft)


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/status (VmRSS, in KiB)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        # The command name may hold spaces; the fields after its closing paren are fixed.
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_s() -> float:
    """CPU seconds all cores spent busy so far (everything but idle and iowait, /proc/stat)."""
    with open("/proc/stat") as f:
        parts = f.readline().split()
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in parts[1:9])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


# Processes of the services behind HotSpot, by /proc/<pid>/comm, for the CPU breakdown.
SERVICE_COMMS = {"postgres": "postgres", "redis-server": "redis", "beam.smp": "rabbitmq"}


def service_pids() -> dict[str, list[int]]:
    """PostgreSQL (every backend), Redis and RabbitMQ processes running now."""
    found: dict[str, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm in SERVICE_COMMS:
            found.setdefault(SERVICE_COMMS[comm], []).append(int(entry))
    return found


def _cpu_or_none(pid: int) -> float | None:
    try:
        return process_cpu_s(pid)
    except (OSError, IndexError, ValueError):
        return None  # the process ended (e.g. a PostgreSQL backend)


@dataclass
class CpuSample:
    """CPU counters at one instant: named groups of processes, this process, the whole machine."""

    at: float
    groups: dict[str, dict[int, float | None]]
    own: float
    machine: float

    @classmethod
    def take(cls, groups: dict[str, list[int]]) -> CpuSample:
        return cls(at=time.monotonic(),
                   groups={name: {p: _cpu_or_none(p) for p in pids} for name, pids in groups.items()},
                   own=process_cpu_s(os.getpid()), machine=machine_busy_s())


def cpu_between(start: CpuSample, end: CpuSample) -> dict[str, Any]:
    """CPU seconds used in a window: per group, by the load generator, and by everything else.

    "stack" is every busy CPU second of the machine except the load generator's: the
    server processes plus PostgreSQL, Redis and RabbitMQ (and any other tenant).
    """
    groups: dict[str, float] = {}
    for name, pids in start.groups.items():
        total = 0.0
        for pid, before in pids.items():
            after = end.groups.get(name, {}).get(pid)
            if before is not None and after is not None:
                total += after - before
        groups[name] = total
    load = end.own - start.own
    machine = end.machine - start.machine
    return {"wall_s": end.at - start.at, "groups_s": groups, "load_s": load,
            "stack_s": max(machine - load, 0.0)}


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..100); NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]
