"""What every clique use case shares: locking a clique, the caller's role checks, errors.

Every transaction that changes membership, following or roles locks the clique row first
(locked / acting), so counts stay exact under concurrency and role checks see the latest
roles. Roles rank owner > admin > moderator > member, and moderation never acts on someone
of equal or higher rank (above / member_below).
"""


from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import asyncpg

from handlers.clique_schemas import (
    CliqueOut,
    clique_out,
)
from handlers.context import Context
from handlers.errors import CommandError, invalid
from handlers.pagination import PageInput, Position, decode_cursor
from storage import cliques as store
from storage.cliques import RANKS, Clique, CliqueView, Relation

# Limits (docs/cliques.md, docs/limits.md).
OWNED_MAX = 100


def not_found(what: str = "clique") -> CommandError:
    return CommandError("not_found", f"no such {what}")


def forbidden(message: str, reason: str) -> CommandError:
    return CommandError("forbidden", message, {"reason": reason})


def require_rank(mine: Relation, role: str) -> None:
    if mine.rank < RANKS[role]:
        who = "the clique's owner" if role == "owner" else f"the clique's {role}s and above"
        raise CommandError("forbidden", f"only {who} can do this",
                           {"reason": f"not_{role}", "required_role": role})


def above(mine: Relation, theirs: Relation) -> None:
    if theirs.rank >= mine.rank:
        raise forbidden("you cannot act on someone of equal or higher role", "rank")


def not_self(ctx: Context, user_id: uuid.UUID, message: str) -> None:
    if user_id == ctx.user.user_id:
        raise invalid("user_id", message, "self")


async def locked(conn: asyncpg.Connection, ctx: Context, clique_id: uuid.UUID) -> tuple[Clique, Relation]:
    """Lock a live clique, then read the caller's relation to it (roles as of the lock)."""
    clique = await store.lock(conn, clique_id)
    if clique is None:
        raise not_found()
    return clique, await store.relation(conn, clique_id, ctx.user.user_id)


@asynccontextmanager
async def acting(ctx: Context, clique_id: uuid.UUID,
                  role: str) -> AsyncIterator[tuple[asyncpg.Connection, Clique, Relation]]:
    """A transaction with the clique locked and the caller checked to hold role or above."""
    async with ctx.services.db.transaction() as conn:
        clique, mine = await locked(conn, ctx, clique_id)
        require_rank(mine, role)
        yield conn, clique, mine


async def member_below(conn: asyncpg.Connection, clique: Clique, mine: Relation,
                        user_id: uuid.UUID) -> None:
    """not_found unless user_id is a member; forbidden unless ranked below the caller."""
    theirs = await store.relation(conn, clique.id, user_id)
    if theirs.role is None:
        raise not_found("member")
    above(mine, theirs)


def not_banned(mine: Relation) -> None:
    if mine.banned:
        raise forbidden("you are banned from this clique", "banned")


async def clique_view(ctx: Context, clique_id: uuid.UUID) -> CliqueView:
    found = await store.view(ctx.services.db, clique_id, ctx.user.user_id)
    if found is None:
        raise not_found()
    return found


async def clique_card(ctx: Context, clique_id: uuid.UUID) -> CliqueOut:
    return clique_out(await clique_view(ctx, clique_id))


def cursor_position(data: PageInput, name: str) -> tuple[datetime, uuid.UUID] | None:
    after = decode_cursor(data.cursor, name)
    return None if after is None else (after.at, after.id)


async def check_quota(conn: asyncpg.Connection, user_id: uuid.UUID, who: str) -> None:
    await store.lock_owner_quota(conn, user_id)
    if await store.owned_count(conn, user_id) >= OWNED_MAX:
        raise CommandError("conflict", f"{who} already own{'s' if who != 'you' else ''} "
                           f"{OWNED_MAX} cliques", {"reason": "too_many_owned", "limit": OWNED_MAX})


def page_position(found: CliqueView) -> Position:
    return Position(found.at, found.clique.id)
