"""Clique moderation: roles, ownership, removing members, bans and removing items.

Moderation never acts on someone of equal or higher rank. docs/cliques.md has the rules.
"""


from __future__ import annotations

from handlers.clique_access import (
    above,
    acting,
    check_quota,
    clique_card,
    clique_view,
    cursor_position,
    forbidden,
    member_below,
    not_found,
    not_self,
    require_rank,
)
from handlers.clique_schemas import (
    BanInput,
    BanOut,
    BanPage,
    CliqueMemberOut,
    CliqueOut,
    CliquePageInput,
    ItemInput,
    SetRoleInput,
    UserInput,
    ban_out,
    member_out,
)
from handlers.commands import command
from handlers.context import Context
from handlers.pagination import Position, page_of
from handlers.rates import Rate
from handlers.scopes import Scope
from storage import clique_lists as lists
from storage import cliques as store
from storage.cliques import RANKS
from storage.items import tombstone


@command("clique.member.set_role", input=SetRoleInput,
         rest=("PUT", "/cliques/{clique_id}/members/{user_id}/role"), scope=Scope.WRITE_CLIQUES,
         output=CliqueMemberOut,
         rate=Rate("clique_moderate"))
async def set_role(ctx: Context, data: SetRoleInput) -> CliqueMemberOut:
    """Set a member's role: the owner sets admin, moderator or member; admins moderator or member."""
    not_self(ctx, data.user_id, "you cannot change your own role")
    async with acting(ctx, data.clique_id, "admin") as (conn, clique, mine):
        await member_below(conn, clique, mine, data.user_id)
        if RANKS[data.role] >= mine.rank:
            raise forbidden("you can only give roles below your own", "rank")
        await store.set_role(conn, clique.id, data.user_id, data.role)
        found = await store.member(conn, clique.id, data.user_id)
    assert found is not None
    return member_out(found)


@command("clique.transfer_ownership", input=UserInput,
         rest=("POST", "/cliques/{clique_id}/owner/{user_id}"), scope=Scope.WRITE_CLIQUES,
         output=CliqueOut,
         rate=Rate("clique_moderate"))
async def transfer_ownership(ctx: Context, data: UserInput) -> CliqueOut:
    """Hand the clique to another member (owner only); you become an admin."""
    not_self(ctx, data.user_id, "you cannot hand the clique to yourself")
    async with acting(ctx, data.clique_id, "owner") as (conn, clique, _):
        if (await store.relation(conn, clique.id, data.user_id)).role is None:
            raise not_found("member")
        await check_quota(conn, data.user_id, "the new owner")
        # The old owner first: the schema allows one owner per clique at any moment.
        await store.set_role(conn, clique.id, ctx.user.user_id, "admin")
        await store.set_role(conn, clique.id, data.user_id, "owner")
    return await clique_card(ctx, data.clique_id)


@command("clique.member.remove", input=UserInput,
         rest=("DELETE", "/cliques/{clique_id}/members/{user_id}"), scope=Scope.WRITE_CLIQUES, status=204,
         rate=Rate("clique_moderate"))
async def remove_member(ctx: Context, data: UserInput) -> None:
    """Remove a member ranked below you (moderators and above); they may join again."""
    not_self(ctx, data.user_id, "to leave a clique, use clique.leave")
    async with acting(ctx, data.clique_id, "moderator") as (conn, clique, mine):
        await member_below(conn, clique, mine, data.user_id)
        await store.remove_member(conn, clique.id, data.user_id)


@command("clique.ban", input=BanInput, rest=("PUT", "/cliques/{clique_id}/bans/{user_id}"),
         scope=Scope.WRITE_CLIQUES, output=BanOut,
         rate=Rate("clique_moderate"))
async def ban(ctx: Context, data: BanInput) -> BanOut:
    """Ban a user ranked below you (moderators and above): ends their membership,
    following, request and invite; banning again keeps the first ban."""
    not_self(ctx, data.user_id, "you cannot ban yourself")
    async with acting(ctx, data.clique_id, "moderator") as (conn, clique, mine):
        if not await store.user_exists(conn, data.user_id):
            raise not_found("user")
        above(mine, await store.relation(conn, clique.id, data.user_id))
        await store.ban(conn, clique.id, data.user_id, ctx.user.user_id, data.reason)
        found = await store.get_ban(conn, clique.id, data.user_id)
    assert found is not None
    return ban_out(found)


@command("clique.unban", input=UserInput, rest=("DELETE", "/cliques/{clique_id}/bans/{user_id}"),
         scope=Scope.WRITE_CLIQUES, status=204,
         rate=Rate("clique_moderate"))
async def unban(ctx: Context, data: UserInput) -> None:
    """Lift a ban (moderators and above); the user may then join or ask again."""
    async with acting(ctx, data.clique_id, "moderator") as (conn, clique, _):
        if not await store.unban(conn, clique.id, data.user_id):
            raise not_found("ban")


@command("clique.ban.list", input=CliquePageInput, rest=("GET", "/cliques/{clique_id}/bans"),
         scope=Scope.READ_CLIQUES, output=BanPage,
         rate=Rate("reads"))
async def bans(ctx: Context, data: CliquePageInput) -> BanPage:
    """The clique's bans, newest first (moderators and above)."""
    require_rank((await clique_view(ctx, data.clique_id)).viewer, "moderator")
    rows = await lists.bans(ctx.services.db, data.clique_id, data.limit + 1,
                            cursor_position(data, "clique.ban.list"))
    page, next_cursor = page_of(rows, data.limit, lambda b: Position(b.banned_at, b.user.id))
    return BanPage(bans=[ban_out(b) for b in page], next_cursor=next_cursor)


@command("clique.item.remove", input=ItemInput,
         rest=("DELETE", "/cliques/{clique_id}/items/{item_id}"), scope=Scope.WRITE_CLIQUES, status=204,
         rate=Rate("clique_moderate"))
async def remove_item(ctx: Context, data: ItemInput) -> None:
    """Tombstone a post, comment or reply in the clique (moderators and above; not the
    items of someone of equal or higher role, but your own)."""
    async with acting(ctx, data.clique_id, "moderator") as (conn, clique, mine):
        item = await store.clique_item(conn, data.item_id)
        if item is None or item.clique_id != clique.id:
            raise not_found("item in this clique")
        if item.author_id != ctx.user.user_id:
            above(mine, await store.relation(conn, clique.id, item.author_id))
        if not item.deleted:
            await tombstone(conn, item.id)
