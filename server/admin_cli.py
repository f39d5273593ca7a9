"""Operator commands of the hotspot CLI: `users` (roles), `dlq` (dead-letter queues), `oauth`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import aio_pika

from config import Settings
from config.clock import utc_now
from handlers.roles import ROLES, UnknownUser, grant_role
from server.resources import StartupError, build_key_ring
from storage import oauth_keys as key_store
from storage import users as user_store
from storage.db import Database
from storage.embedded import EmbeddedPostgres
from storage.oauth_keys import SigningKeyRow
from storage.users import User
from workers.deadletters import DeadLetter, DeadLetters, NoSuchQueue


def add_admin_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Register `users` and `dlq` on the hotspot command's subparsers."""
    users = sub.add_parser("users", help="show users and grant roles")
    users_sub = users.add_subparsers(dest="action", required=True)
    grant = users_sub.add_parser("grant-role", help="set a user's role")
    grant.add_argument("username")
    grant.add_argument("role", choices=ROLES)
    show = users_sub.add_parser("show", help="show a user's account and role")
    show.add_argument("username")
    users.set_defaults(admin=cmd_users)

    dlq = sub.add_parser("dlq", help="inspect, replay or purge a queue's dead letters (RabbitMQ)")
    dlq_sub = dlq.add_subparsers(dest="action", required=True)
    listing = dlq_sub.add_parser("list", help="show dead jobs without removing them")
    listing.add_argument("queue", help="outreach, campaigns, persistence, media, notifications")
    listing.add_argument("--limit", type=int, default=20)
    replay = dlq_sub.add_parser("replay", help="move dead jobs back to their queue, attempts reset")
    replay.add_argument("queue")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", dest="job_id", help="the job id, as dlq list shows it")
    which.add_argument("--all", action="store_true")
    purge = dlq_sub.add_parser("purge", help="drop every dead job of the queue")
    purge.add_argument("queue")
    dlq.set_defaults(admin=cmd_dlq)

    oauth = sub.add_parser("oauth", help="the OAuth/OIDC signing keys")
    oauth_sub = oauth.add_subparsers(dest="action", required=True)
    rotate = oauth_sub.add_parser(
        "rotate-key", help="add a signing key; it signs once every node has published it, and "
        "the old key stays published until its tokens have expired")
    rotate.add_argument("--now", action="store_true",
                        help="sign with the new key at once (nodes may refuse its tokens for up "
                        "to HOTSPOT_OAUTH_KEY_REFRESH_S)")
    oauth_sub.add_parser("keys", help="list the signing keys and their state")
    oauth.set_defaults(admin=cmd_oauth)


def run_admin(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    """Run the admin command parsed into args; the exit code."""
    command: Callable[[argparse.Namespace, Settings], int] = args.admin
    return command(args, settings())


@asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[Database]:
    embedded: EmbeddedPostgres | None = None
    dsn = settings.database_url
    if dsn is None:
        embedded = EmbeddedPostgres(settings.data_dir / "pg")
        dsn = await embedded.start()
    db = await Database.connect(dsn, 1, 2)
    try:
        yield db
    finally:
        await db.close()
        if embedded is not None:
            await embedded.stop()


def _describe_user(user: User) -> str:
    email = "-" if user.email is None else \
        f"{user.email} ({'verified' if user.email_verified_at else 'unverified'})"
    return "\n".join([
        f"id:       {user.id}",
        f"username: {user.username}",
        f"name:     {user.display_name}",
        f"email:    {email}",
        f"phone:    {user.phone or '-'}",
        f"role:     {user.role}",
        f"created:  {user.created_at.isoformat()}",
    ])


async def _users(args: argparse.Namespace, settings: Settings) -> int:
    async with _database(settings) as db:
        if args.action == "show":
            user = await user_store.get_user_by_username(db, args.username)
            if user is None:
                print(f"hotspot: no user {args.username!r}", file=sys.stderr)
                return 1
            print(_describe_user(user))
            return 0
        try:
            user, before = await grant_role(db, args.username, args.role)
        except UnknownUser:
            print(f"hotspot: no user {args.username!r}", file=sys.stderr)
            return 1
        print(f"{user.username}: role {before} -> {user.role}")
        return 0


def cmd_users(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return asyncio.run(_users(args, settings))
    except OSError as exc:
        print(f"hotspot: PostgreSQL is not reachable: {exc}", file=sys.stderr)
        return 1


def _line(letter: DeadLetter) -> str:
    attempts = "?" if letter.attempts is None else str(letter.attempts)
    return (f"{letter.job_id or '(no id)'}  type={letter.type or '?'}  attempts={attempts}  "
            f"bytes={letter.size}  {letter.preview}")


async def _dlq(args: argparse.Namespace, url: str, namespace: str) -> int:
    async with DeadLetters(url, namespace, args.queue) as dead:
        if args.action == "list":
            total = await dead.count()
            letters = await dead.peek(max(1, args.limit))
            for letter in letters:
                print(_line(letter))
            print(f"{total} dead job(s) in {dead.dead_name}; shown {len(letters)}")
        elif args.action == "replay":
            replayed = await dead.replay(None if args.all else args.job_id)
            for letter in replayed:
                print(f"replayed {letter.job_id or '(no id)'}")
            if not args.all and not replayed:
                print(f"hotspot: no dead job {args.job_id!r} in {dead.dead_name}", file=sys.stderr)
                return 1
            print(f"{len(replayed)} job(s) moved back to {dead.main_name}")
        else:
            print(f"purged {await dead.purge()} dead job(s) from {dead.dead_name}")
    return 0


def cmd_dlq(args: argparse.Namespace, settings: Settings) -> int:
    if settings.amqp_url is None:
        print("hotspot: dlq needs HOTSPOT_AMQP_URL: the embedded in-process queue keeps its dead "
              "letters in the server's memory", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_dlq(args, settings.amqp_url, settings.namespace))
    except NoSuchQueue as exc:
        print(f"hotspot: RabbitMQ has no queue {exc} (has a worker consumed "
              f"{args.queue!r} yet?)", file=sys.stderr)
        return 1
    except (OSError, aio_pika.exceptions.AMQPError) as exc:
        print(f"hotspot: RabbitMQ is not reachable: {exc!r}", file=sys.stderr)
        return 1


def _key_state(row: SigningKeyRow, now: datetime, publish_for: timedelta) -> str:
    if row.retired_at is not None and row.retired_at <= now - publish_for:
        return "expired"
    if row.retired_at is not None and row.retired_at <= now:
        return "retired (published)"
    if row.activated_at > now:
        return "pending (published)"
    return "signing"


async def _oauth(args: argparse.Namespace, settings: Settings) -> int:
    async with _database(settings) as db:
        ring = build_key_ring(settings, db)
        if args.action == "rotate-key":
            for row in await ring.rotate(0 if args.now else None):
                print(f"new {row.alg} key {row.kid} signs from {row.activated_at.isoformat()}; "
                      f"the previous {row.alg} key stays published until its tokens have expired")
            return 0
        now = utc_now()
        for row in await key_store.all_keys(db):
            retired = row.retired_at.isoformat() if row.retired_at else "-"
            print(f"{row.kid}  {row.alg}  {_key_state(row, now, ring.publish_for)}  "
                  f"activated={row.activated_at.isoformat()}  retired={retired}")
        return 0


def cmd_oauth(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return asyncio.run(_oauth(args, settings))
    except StartupError as exc:
        print(f"hotspot: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"hotspot: PostgreSQL is not reachable: {exc}", file=sys.stderr)
        return 1
