"""The hotspot command: serve, worker, migrate, users, dlq, oauth, analytics."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from aiohttp import web

from config import Settings, SettingsError, load_settings
from jobs.queue import QueueUnavailable
from server.admin_cli import add_admin_commands, run_admin
from server.analytics_cli import add_analytics_commands
from server.logs import setup_logging
from server.resources import StartupError
from storage.embedded import EmbeddedPostgres
from storage.migrate import migrate
from workers.runner import resolve_worker_names

log = logging.getLogger("hotspot")


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        print(f"hotspot: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _run(app: web.Application, host: str, port: int) -> int:
    try:
        web.run_app(app, host=host, port=port, print=None, shutdown_timeout=10,
                    access_log=None, handle_signals=True)
    except (StartupError, QueueUnavailable) as exc:
        print(f"hotspot: cannot start: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"hotspot: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from server.app import create_app
    from server.health import metrics_listener

    settings = _settings()
    setup_logging(settings.log_level, settings.log_format)
    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    log.info("serving", extra={"url": f"http://{host}:{port}", "node": settings.node_id,
                               "embedded_db": settings.database_url is None,
                               "redis": bool(settings.redis_url),
                               "rabbitmq": bool(settings.amqp_url),
                               "metrics": (f"http://{settings.metrics_host}:{settings.metrics_port}"
                                           "/metrics" if settings.metrics_port else None)})
    app = create_app(settings)
    if settings.metrics_port:
        app.cleanup_ctx.append(metrics_listener(settings.metrics_host, settings.metrics_port))
    return _run(app, host, port)


def cmd_worker(args: argparse.Namespace) -> int:
    from server.app import create_worker_app

    settings = _settings()
    setup_logging(settings.log_level, settings.log_format)
    try:
        names = resolve_worker_names(args.names)
    except ValueError as exc:
        print(f"hotspot: {exc}", file=sys.stderr)
        return 2
    if settings.amqp_url is None:
        print("hotspot: a separate worker needs HOTSPOT_AMQP_URL (RabbitMQ); with the embedded "
              "default the server runs every worker in-process", file=sys.stderr)
        return 2
    port = args.port if args.port is not None else settings.worker_port
    log.info("worker starting", extra={"workers": names, "port": port})
    return _run(create_worker_app(settings, names), settings.host, port)


async def _migrate(settings: Settings) -> list[str]:
    if settings.database_url is not None:
        return await migrate(settings.database_url)
    embedded = EmbeddedPostgres(settings.data_dir / "pg")
    try:
        return await migrate(await embedded.start())
    finally:
        await embedded.stop()


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings()
    setup_logging(settings.log_level, "text")
    try:
        applied = asyncio.run(_migrate(settings))
    except OSError as exc:
        print(f"hotspot: PostgreSQL is not reachable: {exc}", file=sys.stderr)
        return 1
    print("applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hotspot", description="HotSpot realtime back end")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the API and Socket.IO server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(func=cmd_serve)
    worker = sub.add_parser(
        "worker", help="run queue workers: persistence, media, slides, notifications, outreach, "
                       "analytics, or all")
    worker.add_argument("names", nargs="*", default=["all"])
    worker.add_argument("--port", type=int, help="port for /health and /metrics")
    worker.set_defaults(func=cmd_worker)
    mig = sub.add_parser("migrate", help="apply database migrations")
    mig.set_defaults(func=cmd_migrate)
    add_admin_commands(sub)
    add_analytics_commands(sub)
    args = parser.parse_args(argv)
    if hasattr(args, "admin"):
        return run_admin(args, _settings)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
