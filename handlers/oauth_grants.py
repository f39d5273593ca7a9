"""What a user granted OAuth apps: list and revoke grants; the scope catalogue apps ask from.

Revoking a grant, deleting or suspending an app all end token families, which are sessions:
end_app_sessions announces them exactly as a logout does, so their access tokens stop on
every node at once and their sockets get `session.revoked` and are disconnected.
"""

from __future__ import annotations

import uuid
from collections import defaultdict

from handlers.commands import Empty, command
from handlers.context import Context, Services
from handlers.errors import CommandError
from handlers.oauth_schemas import (
    AppIdInput,
    GrantListInput,
    GrantOut,
    GrantPage,
    ScopeList,
    ScopeOut,
)
from handlers.pagination import Position, decode_cursor, page_of
from handlers.rates import Rate
from handlers.scopes import Scope, describe
from storage import oauth_apps as app_store
from storage.oauth_apps import EndedSession


async def end_app_sessions(services: Services, ended: list[EndedSession], reason: str) -> None:
    """Stop the sessions' access tokens everywhere and close their sockets, per user."""
    if not ended:
        return
    await services.revocations.revoke([e.session_id for e in ended])
    by_user: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for e in ended:
        by_user[e.user_id].append(e.session_id)
    for user_id, session_ids in by_user.items():
        await services.realtime.end_sessions(user_id, session_ids, reason)


@command("oauth.grant.list", input=GrantListInput, output=GrantPage,
         rest=("GET", "/users/me/oauth_grants"), scope=Scope.ACCOUNT, rate=Rate("reads"))
async def list_grants(ctx: Context, data: GrantListInput) -> GrantPage:
    """The apps you authorized: their scopes, when you granted them, their last use."""
    after = decode_cursor(data.cursor, "oauth.grant.list")
    rows = await app_store.list_grants(ctx.services.db, ctx.user.user_id,
                                       None if after is None else (after.at, after.id),
                                       data.limit)
    page, next_cursor = page_of(rows, data.limit,
                                lambda g: Position(g.consent.created_at, g.consent.app_id))
    return GrantPage(items=[GrantOut.of(g) for g in page], next_cursor=next_cursor)


@command("oauth.grant.revoke", input=AppIdInput, rest=("DELETE", "/users/me/oauth_grants/{app_id}"),
         scope=Scope.ACCOUNT, status=204, rate=Rate("oauth_grant_manage"))
async def revoke_grant(ctx: Context, data: AppIdInput) -> None:
    """Revoke what you granted an app: its tokens for you stop and their sockets close."""
    ended = await app_store.revoke_grant(ctx.services.db, ctx.user.user_id, data.app_id)
    if ended is None:
        raise CommandError("not_found", "you have not authorized this app")
    await end_app_sessions(ctx.services, ended, "grant_revoked")


@command("oauth.scope.list", output=ScopeList, rest=("GET", "/oauth/scopes"), auth="none",
         rate=Rate("public_reads", per="ip"))
async def list_scopes(ctx: Context, data: Empty) -> ScopeList:
    """The scope catalogue: what each scope lets a token do, and which apps may ask for."""
    return ScopeList(scopes=[ScopeOut.model_validate(row) for row in describe()])
