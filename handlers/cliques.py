"""Cliques (groups): create, read, change, delete, list and search them.

A clique's card (name, description, counts) is visible to every user, like a private
Facebook group's; its posts and member list are for members only when it is private.
A deleted clique answers not_found everywhere. docs/cliques.md has the rules; the locking
and role checks every clique use case shares are in handlers/clique_access.py.
"""


from __future__ import annotations

from handlers import activities
from handlers.clique_access import (
    acting,
    check_quota,
    clique_card,
    cursor_position,
    page_position,
)
from handlers.clique_schemas import (
    CliqueIdInput,
    CliqueOut,
    CliquePage,
    CreateInput,
    SearchInput,
    UpdateInput,
    clique_out,
)
from handlers.commands import command
from handlers.context import Context
from handlers.errors import CommandError
from handlers.idempotency import clique_retry
from handlers.pagination import PageInput, page_of
from handlers.rates import Rate
from handlers.scopes import Scope
from storage import clique_lists as lists
from storage import cliques as store


@command("clique.create", input=CreateInput, rest=("POST", "/cliques"), scope=Scope.WRITE_CLIQUES,
         status=201, output=CliqueOut,
         rate=Rate("clique_create"), is_retry=clique_retry)
async def create(ctx: Context, data: CreateInput) -> CliqueOut:
    """Create a clique with you as its owner (at most 100 owned, 10 created an hour)."""
    services, me = ctx.services, ctx.user.user_id
    if (replayed := await _replay(ctx, data)) is not None:
        return replayed
    async with services.db.transaction() as conn:
        await check_quota(conn, me, "you")
        clique_id = await store.create(conn, name=data.name, description=data.description,
                                       is_private=data.is_private, avatar_url=data.avatar_url,
                                       owner=me, idempotency_key=data.idempotency_key)
    if clique_id is None:
        # A concurrent create with this key won; its clique is the answer.
        replayed = await _replay(ctx, data)
        if replayed is None:
            raise RuntimeError("a clique created under this idempotency key is missing")
        return replayed
    return await clique_card(ctx, clique_id)


async def _replay(ctx: Context, data: CreateInput) -> CliqueOut | None:
    """A retried create (same idempotency key) answers the clique the first one made."""
    if data.idempotency_key is None:
        return None
    found = await store.created_with_key(ctx.services.db, ctx.user.user_id, data.idempotency_key)
    if found is None:
        return None
    clique_id, name = found
    if name != data.name:
        raise CommandError("conflict", "this idempotency key was used for another clique",
                           {"reason": "idempotency_key_reused"})
    return await clique_card(ctx, clique_id)


@command("clique.get", input=CliqueIdInput, rest=("GET", "/cliques/{clique_id}"),
         scope=Scope.READ_CLIQUES, output=CliqueOut,
         rate=Rate("reads"))
async def get(ctx: Context, data: CliqueIdInput) -> CliqueOut:
    """A clique's card and where you stand with it (visible to everyone, private or not)."""
    return await clique_card(ctx, data.clique_id)


@command("clique.update", input=UpdateInput, rest=("PATCH", "/cliques/{clique_id}"),
         scope=Scope.WRITE_CLIQUES, output=CliqueOut,
         rate=Rate("clique_moderate"))
async def update(ctx: Context, data: UpdateInput) -> CliqueOut:
    """Change name, description, privacy or avatar (owner and admins).

    Going public makes pending requesters members; going private drops the followers and
    the invites of inviters below moderator.
    """
    fields = data.model_fields_set & {"name", "description", "is_private", "avatar_url"}
    async with acting(ctx, data.clique_id, "admin") as (conn, clique, _):
        changes = {k: getattr(data, k) for k in fields if getattr(clique, k) != getattr(data, k)}
        if changes:
            await store.update(conn, clique.id, changes)
            if changes.get("is_private") is False:
                await store.accept_all_requests(conn, clique.id)
            elif changes.get("is_private") is True:
                await store.drop_followers(conn, clique.id)
                # An invite to a private clique skips approval: only moderators' may stay.
                await store.drop_invites_below(conn, clique.id, "moderator")
    return await clique_card(ctx, data.clique_id)


@command("clique.delete", input=CliqueIdInput, rest=("DELETE", "/cliques/{clique_id}"),
         scope=Scope.WRITE_CLIQUES, status=204,
         rate=Rate("clique_moderate"))
async def delete(ctx: Context, data: CliqueIdInput) -> None:
    """Delete a clique (owner only): it and its posts answer not_found from then on."""
    async with acting(ctx, data.clique_id, "owner") as (conn, clique, _):
        await store.soft_delete(conn, clique.id)


@command("clique.list_mine", input=PageInput, rest=("GET", "/users/me/cliques"),
         scope=Scope.READ_CLIQUES, output=CliquePage,
         rate=Rate("reads"))
async def list_mine(ctx: Context, data: PageInput) -> CliquePage:
    """The cliques you are a member of, most recently joined first."""
    rows = await lists.list_for_member(ctx.services.db, ctx.user.user_id, data.limit + 1,
                                       cursor_position(data, "clique.list_mine"))
    page, next_cursor = page_of(rows, data.limit, page_position)
    return CliquePage(cliques=[clique_out(v) for v in page], next_cursor=next_cursor)


@command("clique.search", input=SearchInput, rest=("GET", "/cliques"), scope=Scope.READ_CLIQUES,
         output=CliquePage,
         rate=Rate("reads"), activity=activities.CLIQUE_SEARCHED)
async def search(ctx: Context, data: SearchInput) -> CliquePage:
    """Cliques, public and private, whose name contains q (any case), newest first."""
    rows = await lists.search(ctx.services.db, ctx.user.user_id, data.q, data.limit + 1,
                              cursor_position(data, "clique.search"))
    page, next_cursor = page_of(rows, data.limit, page_position)
    return CliquePage(cliques=[clique_out(v) for v in page], next_cursor=next_cursor)
