"""Prometheus metrics, in a registry owned by the app (not the library's global one)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.commands = Counter(
            "hotspot_commands_total", "Commands run, by name, transport and outcome",
            ["command", "transport", "outcome"], registry=self.registry,
        )
        self.latency = Histogram(
            "hotspot_command_seconds", "Command latency in seconds, by name and transport",
            ["command", "transport"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.connections = Gauge(
            "hotspot_socket_connections", "Open Socket.IO connections on this node",
            registry=self.registry,
        )
        self.http_requests = Counter(
            "hotspot_http_requests_total", "HTTP requests by method and status",
            ["method", "status"], registry=self.registry,
        )

        self.analytics_dropped = Counter(
            "hotspot_analytics_events_dropped_total",
            "Analytics events dropped because the publish buffer was full (queue down)",
            registry=self.registry,
        )

    def track_connections(self, count: Callable[[], int]) -> None:
        self.connections.set_function(lambda: float(count()))

    def render(self) -> bytes:
        return generate_latest(self.registry)
