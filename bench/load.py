"""The load generator: one process of python-socketio clients running one benchmark phase.

    python -m bench.load spec.json

The spec (written by bench.realtime) names the phase (memory, dm or fanout), the
server URL and pids, the users with their access tokens, and the phase's settings.
Progress goes to stderr. Stdout carries JSON lines: {"event": "window_start"} and
{"event": "window_end"} around the measurement window, then {"result": {...}}.
The load generator reads the server's RSS and CPU from /proc itself, so a phase's
measurements start and end exactly with its measurement window.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
import orjson
import socketio

from bench.common import (
    BODY_TAIL,
    EVENT_NEW,
    EVENT_SEND,
    CpuSample,
    OrjsonModule,
    cpu_between,
    log,
    percentile,
    raise_fd_limit,
    rss_kib,
    service_pids,
)

CONNECT_TIMEOUT_S = 20.0
ACK_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 15.0
PROGRESS_EVERY_S = 5.0


@dataclass
class Window:
    """The measurement window, in CLOCK_MONOTONIC ns; 0 = not open / not closed yet."""

    start_ns: int = 0
    end_ns: int = 0

    def holds(self, at_ns: int) -> bool:
        return self.start_ns != 0 and at_ns >= self.start_ns and (self.end_ns == 0 or at_ns <= self.end_ns)


@dataclass
class Deliveries:
    """What the receiving sockets saw."""

    window: Window
    total: int = 0
    in_window: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    client_ids: set[str] = field(default_factory=set)
    # Set on every delivery: senders holding back and the final drain wait on it.
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_while(self, condition: Callable[[], bool], timeout_s: float) -> None:
        """Wait until condition() is false, re-checking after each delivery, at most timeout_s."""
        deadline = time.monotonic() + timeout_s
        while condition() and (left := deadline - time.monotonic()) > 0:
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                return

    def record(self, data: dict[str, Any]) -> None:
        now = time.monotonic_ns()
        self.total += 1
        self.changed.set()
        if self.window.holds(now):
            self.in_window += 1
            sent_ns = int(data["body"].split(" ", 1)[0])
            # Only messages sent inside the window: warm-up sends do not skew latency.
            if sent_ns >= self.window.start_ns:
                self.latencies_ms.append((now - sent_ns) / 1e6)


@dataclass
class Sends:
    """What the sending sockets got back."""

    window: Window
    started: int = 0
    acked: int = 0
    acked_in_window: int = 0
    acked_ids: set[str] = field(default_factory=set)
    ack_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    first_errors: list[Any] = field(default_factory=list)

    @property
    def in_flight_or_acked(self) -> int:
        """Sends that did not fail: each of them is (or will be) delivered."""
        return self.started - sum(self.errors.values())

    def error(self, code: str, detail: Any) -> None:
        self.errors[code] += 1
        if len(self.first_errors) < 5:
            self.first_errors.append(detail)


class Clients:
    """Many python-socketio clients sharing one aiohttp session, connected with bounded concurrency."""

    def __init__(self, url: str, label: str, concurrency: int) -> None:
        self.url = url
        self.label = label
        self.concurrency = concurrency
        self.session: aiohttp.ClientSession | None = None
        self.connected: list[socketio.AsyncClient] = []
        self.failures: Counter[str] = Counter()

    async def __aenter__(self) -> Clients:
        # limit=0: the default pool of 100 would stall the 101st websocket.
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect_all()
        if self.session is not None:
            await self.session.close()

    def new_client(self) -> socketio.AsyncClient:
        return socketio.AsyncClient(reconnection=False, handle_sigint=False, json=OrjsonModule,
                                    http_session=self.session)

    async def connect(
        self, tokens: list[str], setup: Callable[[int, socketio.AsyncClient], None] | None = None,
    ) -> list[socketio.AsyncClient | None]:
        """One socket per token, in order (None where it failed); progress on stderr."""
        out: list[socketio.AsyncClient | None] = [None] * len(tokens)
        done = itertools.count(1)
        gate = asyncio.Semaphore(self.concurrency)
        step = max(1, len(tokens) // 10)

        async def one(index: int, token: str) -> None:
            async with gate:
                for attempt in range(2):
                    client = self.new_client()
                    if setup is not None:
                        setup(index, client)
                    try:
                        await client.connect(self.url, auth={"token": token}, transports=["websocket"],
                                             wait_timeout=CONNECT_TIMEOUT_S)
                    except (socketio.exceptions.ConnectionError, OSError, TimeoutError) as exc:
                        if attempt == 1:
                            self.failures[str(exc)[:120]] += 1
                        else:
                            await asyncio.sleep(0.5)
                        continue
                    out[index] = client
                    self.connected.append(client)
                    break
            n = next(done)
            if n % step == 0 or n == len(tokens):
                log(f"{self.label}: connecting {n}/{len(tokens)}")

        await asyncio.gather(*(one(i, t) for i, t in enumerate(tokens)))
        if self.failures:
            log(f"{self.label}: {sum(self.failures.values())} sockets failed to connect: "
                f"{dict(self.failures.most_common(3))}")
        return out

    async def disconnect_all(self) -> None:
        gate = asyncio.Semaphore(self.concurrency * 4)

        async def one(client: socketio.AsyncClient) -> None:
            async with gate:
                try:
                    await asyncio.wait_for(client.disconnect(), 10)
                except (TimeoutError, OSError, socketio.exceptions.SocketIOError):
                    pass

        clients, self.connected = self.connected, []
        await asyncio.gather(*(one(c) for c in clients))


def _message(conversation_id: str, client_id: str, sent_ns: int) -> dict[str, Any]:
    # The wall-clock time too: it compares with the server's created_at (same machine clock).
    return {"conversation_id": conversation_id, "client_id": client_id,
            "body": f"{sent_ns} {time.time_ns()}{BODY_TAIL}"}


def stored_after_ms(data: dict[str, Any]) -> float:
    """From the send to the message's created_at (HotSpot: its storing transaction began)."""
    sent_wall_ns = int(data["body"].split(" ", 2)[1])
    return (datetime.fromisoformat(data["created_at"]).timestamp() * 1e9 - sent_wall_ns) / 1e6


async def _send(client: socketio.AsyncClient, sends: Sends, conversation_id: str,
                client_id: str) -> None:
    """One send, waiting for its ack; a rate_limited answer waits as long as the server asks."""
    sends.started += 1
    sent_ns = time.monotonic_ns()
    try:
        ack = await client.call(EVENT_SEND, _message(conversation_id, client_id, sent_ns),
                                timeout=ACK_TIMEOUT_S)
    except socketio.exceptions.TimeoutError:
        sends.error("ack_timeout", client_id)
        return
    except socketio.exceptions.SocketIOError as exc:
        sends.error("socket_error", str(exc))
        await asyncio.sleep(0.1)
        return
    if ack.get("ok"):
        sends.acked += 1
        sends.acked_ids.add(client_id)
        now = time.monotonic_ns()
        if sends.window.holds(now):
            sends.acked_in_window += 1
            if sent_ns >= sends.window.start_ns:
                sends.ack_ms.append((now - sent_ns) / 1e6)
        return
    error = ack.get("error") or {}
    sends.error(str(error.get("code")), error)
    retry_after = (error.get("details") or {}).get("retry_after")
    await asyncio.sleep(float(retry_after) if retry_after else 0.1)


async def _measure(label: str, window: Window, deliveries: Deliveries, spec: dict[str, Any],
                   ) -> dict[str, Any]:
    """Warm up, then open the window for duration_s, with progress; the window's CPU use."""
    await asyncio.sleep(spec["warmup_s"])
    groups = {**spec["server_pids"], **service_pids()}
    notify("window_start")
    cpu_start = CpuSample.take(groups)
    window.start_ns = time.monotonic_ns()
    elapsed = 0.0
    while elapsed < spec["duration_s"]:
        step = min(PROGRESS_EVERY_S, spec["duration_s"] - elapsed)
        await asyncio.sleep(step)
        elapsed += step
        log(f"{label}: {elapsed:.0f}/{spec['duration_s']:.0f} s, "
            f"{deliveries.in_window / elapsed:,.0f} deliveries/s")
    window.end_ns = time.monotonic_ns()
    cpu = cpu_between(cpu_start, CpuSample.take(groups))
    notify("window_end")
    return cpu


def notify(event: str) -> None:
    """A line for the orchestrator (it starts and stops profilers on these)."""
    sys.stdout.write(orjson.dumps({"event": event}).decode() + "\n")
    sys.stdout.flush()


def _latency(values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)
    return {"samples": len(ordered), "p50_ms": percentile(ordered, 50),
            "p99_ms": percentile(ordered, 99), "max_ms": ordered[-1] if ordered else None}


async def _drain(label: str, deliveries: Deliveries, expected: Callable[[], int],
                 seen: Callable[[], int]) -> None:
    """Wait (bounded) until every acked message has reached every receiver."""
    await deliveries.wait_while(lambda: seen() < expected(), DRAIN_TIMEOUT_S)
    if seen() < expected():
        log(f"{label}: {expected() - seen()} deliveries still missing after {DRAIN_TIMEOUT_S:.0f} s")


async def phase_memory(spec: dict[str, Any]) -> dict[str, Any]:
    """RSS of the server before and after connecting `count` idle authenticated sockets."""
    label, tokens = spec["label"], [u["token"] for u in spec["users"]]
    warm, count = spec["warm"], spec["count"]
    async with Clients(spec["url"], label, spec["concurrency"]) as clients:
        # A few sockets first, so one-time costs (imports, caches, pools) are not counted.
        await clients.connect(tokens[:warm])
        await asyncio.sleep(spec["settle_s"])
        before = rss_kib(spec["rss_pid"])
        await clients.connect(tokens[warm:warm + count])
        opened = len(clients.connected) - warm
        await asyncio.sleep(spec["settle_s"])
        after = rss_kib(spec["rss_pid"])
        log(f"{label}: RSS {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB with {opened} more sockets")
    return {"rss_before_kib": before, "rss_after_kib": after, "sockets": opened,
            "kib_per_socket": (after - before) / opened if opened else None,
            "connect_failures": sum(clients.failures.values())}


async def phase_dm(spec: dict[str, Any]) -> dict[str, Any]:
    """Pairs in DMs: the first of each pair sends in a closed loop, the peer's socket receives."""
    label, users, pairs = spec["label"], spec["users"], spec["pairs"]
    window = Window()
    deliveries, sends = Deliveries(window), Sends(window)
    stored_ms: list[float] = []
    receivers = {b for _, b, _ in pairs}

    def setup(index: int, client: socketio.AsyncClient) -> None:
        if index not in receivers:
            return  # a sender also gets its own message.new in the room; not a delivery

        def on_new(data: dict[str, Any]) -> None:
            deliveries.record(data)
            deliveries.client_ids.add(data["client_id"])
            if window.holds(time.monotonic_ns()) and \
                    int(data["body"].split(" ", 1)[0]) >= window.start_ns:
                stored_ms.append(stored_after_ms(data))

        client.on(EVENT_NEW, on_new)

    stop = asyncio.Event()
    async with Clients(spec["url"], label, spec["concurrency"]) as clients:
        sockets = await clients.connect([u["token"] for u in users], setup)

        async def sender(pair_no: int, a: int, conversation_id: str) -> None:
            client = sockets[a]
            if client is None:
                return
            for n in itertools.count():
                if stop.is_set():
                    return
                await _send(client, sends, conversation_id, f"p{pair_no}-{n}")

        log(f"{label}: {len(pairs)} pairs sending, warm-up {spec['warmup_s']:.0f} s")
        tasks = [asyncio.create_task(sender(i, a, c)) for i, (a, _, c) in enumerate(pairs)]
        cpu = await _measure(label, window, deliveries, spec)
        stop.set()
        await asyncio.gather(*tasks)
        await _drain(label, deliveries, lambda: len(sends.acked_ids), lambda: len(deliveries.client_ids))
    duration = (window.end_ns - window.start_ns) / 1e9
    return {
        "duration_s": duration, "pairs": len(pairs),
        "messages_per_s": deliveries.in_window / duration,
        "acks_per_s": sends.acked_in_window / duration,
        "latency": _latency(deliveries.latencies_ms),
        "ack_latency": _latency(sends.ack_ms), "stored_latency": _latency(stored_ms),
        "acked": sends.acked, "missing": len(sends.acked_ids - deliveries.client_ids),
        "duplicates": deliveries.total - len(deliveries.client_ids),
        "errors": dict(sends.errors), "first_errors": sends.first_errors,
        "connect_failures": sum(clients.failures.values()),
        "cpu": cpu,
    }


async def phase_fanout(spec: dict[str, Any]) -> dict[str, Any]:
    """Members of one group all connected; a few of them send; count deliveries to every member."""
    label, users = spec["label"], spec["users"]
    group_id, sender_count, backlog = spec["group_id"], spec["senders"], spec["backlog_messages"]
    inflight = spec["inflight_per_sender"]
    window = Window()
    deliveries, sends = Deliveries(window), Sends(window)

    def setup(index: int, client: socketio.AsyncClient) -> None:
        client.on(EVENT_NEW, deliveries.record)

    stop = asyncio.Event()
    async with Clients(spec["url"], label, spec["concurrency"]) as clients:
        sockets = await clients.connect([u["token"] for u in users], setup)
        members = len(clients.connected)

        async def sender(sender_no: int, lane: int) -> None:
            client = sockets[sender_no]
            if client is None:
                return
            for n in itertools.count():
                # `inflight` closed loops per sender, so the rate is not bound by one send's
                # latency; and at most `backlog` messages not yet delivered to everyone, so
                # queues stay bounded: this measures delivery capacity, not buffering.
                await deliveries.wait_while(
                    lambda: not stop.is_set()
                    and sends.in_flight_or_acked * members - deliveries.total > backlog * members,
                    1.0)
                if stop.is_set():
                    return
                await _send(client, sends, group_id, f"s{sender_no}-{lane}-{n}")

        log(f"{label}: {sender_count} senders ({inflight} sends in flight each) into {members} "
            f"members, warm-up {spec['warmup_s']:.0f} s")
        tasks = [asyncio.create_task(sender(i, lane))
                 for i in range(sender_count) for lane in range(inflight)]
        cpu = await _measure(label, window, deliveries, spec)
        stop.set()
        await asyncio.gather(*tasks)
        await _drain(label, deliveries, lambda: sends.acked * members, lambda: deliveries.total)
    duration = (window.end_ns - window.start_ns) / 1e9
    return {
        "duration_s": duration, "members": members, "senders": sender_count, "inflight": inflight,
        "deliveries_per_s": deliveries.in_window / duration,
        "messages_per_s": deliveries.in_window / duration / members if members else 0.0,
        "latency": _latency(deliveries.latencies_ms),
        "acked": sends.acked, "missing": max(sends.acked * members - deliveries.total, 0),
        "errors": dict(sends.errors), "first_errors": sends.first_errors,
        "connect_failures": sum(clients.failures.values()),
        "cpu": cpu,
    }


PHASES = {"memory": phase_memory, "dm": phase_dm, "fanout": phase_fanout}


def main() -> None:
    with open(sys.argv[1], "rb") as f:
        spec = orjson.loads(f.read())
    # Every socket is a file descriptor; the default soft limit (often 1024) is too low.
    limit = raise_fd_limit(len(spec["users"]) + 1024)
    if limit < len(spec["users"]) + 64:
        raise SystemExit(f"bench.load: open-files limit {limit} is too low for {len(spec['users'])} sockets")
    result = asyncio.run(PHASES[spec["phase"]](spec))
    sys.stdout.write(orjson.dumps({"result": result}).decode() + "\n")


if __name__ == "__main__":
    main()
