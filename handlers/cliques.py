"""Cliques (groups): create and run them, join, invite, follow, roles and moderation.

A clique's card (name, description, counts) is visible to every user, like a private
Facebook group's; its posts and member list are for members only when it is private.
A deleted clique answers not_found everywhere. Roles rank owner > admin > moderator >
member, and moderation never acts on someone of equal or higher rank. Every transaction
that changes membership, following or roles locks the clique row first, so counts stay
exact under concurrency and role checks see the latest roles. docs/cliques.md has the rules.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import asyncpg

from handlers.clique_schemas import (
    BanInput,
    BanOut,
    BanPage,
    CliqueIdInput,
    CliqueMemberOut,
    CliqueOut,
    CliquePage,
    CliquePageInput,
    CreateInput,
    InviteOut,
    InvitePage,
    ItemInput,
    JoinOut,
    MemberPage,
    MembersInput,
    MyInviteOut,
    RequestPage,
    SearchInput,
    SetRoleInput,
    UpdateInput,
    UserInput,
    ban_out,
    clique_out,
    member_out,
    request_out,
    user_out,
)
from handlers.commands import command
from handlers.context import Context
from handlers.errors import CommandError, invalid
from handlers.notifications import notify
from handlers.pagination import PageInput, Position, decode_cursor, page_of
from handlers.rates import Rate
from handlers.scopes import Scope
from storage import clique_lists as lists
from storage import cliques as store
from storage.cliques import RANKS, Clique, CliqueView, Relation
from storage.items import tombstone
from storage.notifications import Kind

# Limits (docs/cliques.md, docs/limits.md).
OWNED_MAX = 100


def _not_found(what: str = "clique") -> CommandError:
    return CommandError("not_found", f"no such {what}")


def _forbidden(message: str, reason: str) -> CommandError:
    return CommandError("forbidden", message, {"reason": reason})


def _require(mine: Relation, role: str) -> None:
    if mine.rank < RANKS[role]:
        who = "the clique's owner" if role == "owner" else f"the clique's {role}s and above"
        raise CommandError("forbidden", f"only {who} can do this",
                           {"reason": f"not_{role}", "required_role": role})


def _above(mine: Relation, theirs: Relation) -> None:
    if theirs.rank >= mine.rank:
        raise _forbidden("you cannot act on someone of equal or higher role", "rank")


def _not_self(ctx: Context, user_id: uuid.UUID, message: str) -> None:
    if user_id == ctx.user.user_id:
        raise invalid("user_id", message, "self")


async def _locked(conn: asyncpg.Connection, ctx: Context, clique_id: uuid.UUID) -> tuple[Clique, Relation]:
    """Lock a live clique, then read the caller's relation to it (roles as of the lock)."""
    clique = await store.lock(conn, clique_id)
    if clique is None:
        raise _not_found()
    return clique, await store.relation(conn, clique_id, ctx.user.user_id)


@asynccontextmanager
async def _acting(ctx: Context, clique_id: uuid.UUID,
                  role: str) -> AsyncIterator[tuple[asyncpg.Connection, Clique, Relation]]:
    """A transaction with the clique locked and the caller checked to hold role or above."""
    async with ctx.services.db.transaction() as conn:
        clique, mine = await _locked(conn, ctx, clique_id)
        _require(mine, role)
        yield conn, clique, mine


async def _member_below(conn: asyncpg.Connection, clique: Clique, mine: Relation,
                        user_id: uuid.UUID) -> None:
    """not_found unless user_id is a member; forbidden unless ranked below the caller."""
    theirs = await store.relation(conn, clique.id, user_id)
    if theirs.role is None:
        raise _not_found("member")
    _above(mine, theirs)


def _not_banned(mine: Relation) -> None:
    if mine.banned:
        raise _forbidden("you are banned from this clique", "banned")


async def _view(ctx: Context, clique_id: uuid.UUID) -> CliqueView:
    found = await store.view(ctx.services.db, clique_id, ctx.user.user_id)
    if found is None:
        raise _not_found()
    return found


async def _card(ctx: Context, clique_id: uuid.UUID) -> CliqueOut:
    return clique_out(await _view(ctx, clique_id))


def _before(data: PageInput, name: str) -> tuple[datetime, uuid.UUID] | None:
    after = decode_cursor(data.cursor, name)
    return None if after is None else (after.at, after.id)


async def _check_quota(conn: asyncpg.Connection, user_id: uuid.UUID, who: str) -> None:
    await store.lock_owner_quota(conn, user_id)
    if await store.owned_count(conn, user_id) >= OWNED_MAX:
        raise CommandError("conflict", f"{who} already own{'s' if who != 'you' else ''} "
                           f"{OWNED_MAX} cliques", {"reason": "too_many_owned", "limit": OWNED_MAX})


@command("clique.create", input=CreateInput, rest=("POST", "/cliques"), scope=Scope.WRITE_CLIQUES,
         status=201, output=CliqueOut,
         rate=Rate("clique_create"))
async def create(ctx: Context, data: CreateInput) -> CliqueOut:
    """Create a clique with you as its owner (at most 100 owned, 10 created an hour)."""
    services, me = ctx.services, ctx.user.user_id
    if (replayed := await _replay(ctx, data)) is not None:
        return replayed
    async with services.db.transaction() as conn:
        await _check_quota(conn, me, "you")
        clique_id = await store.create(conn, name=data.name, description=data.description,
                                       is_private=data.is_private, avatar_url=data.avatar_url,
                                       owner=me, idempotency_key=data.idempotency_key)
    if clique_id is None:
        # A concurrent create with this key won; its clique is the answer.
        replayed = await _replay(ctx, data)
        if replayed is None:
            raise RuntimeError("a clique created under this idempotency key is missing")
        return replayed
    return await _card(ctx, clique_id)


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
    return await _card(ctx, clique_id)


@command("clique.get", input=CliqueIdInput, rest=("GET", "/cliques/{clique_id}"),
         scope=Scope.READ_CLIQUES, output=CliqueOut,
         rate=Rate("reads"))
async def get(ctx: Context, data: CliqueIdInput) -> CliqueOut:
    """A clique's card and where you stand with it (visible to everyone, private or not)."""
    return await _card(ctx, data.clique_id)


@command("clique.update", input=UpdateInput, rest=("PATCH", "/cliques/{clique_id}"),
         scope=Scope.WRITE_CLIQUES, output=CliqueOut,
         rate=Rate("clique_moderate"))
async def update(ctx: Context, data: UpdateInput) -> CliqueOut:
    """Change name, description, privacy or avatar (owner and admins).

    Going public makes pending requesters members; going private drops the followers and
    the invites of inviters below moderator.
    """
    fields = data.model_fields_set & {"name", "description", "is_private", "avatar_url"}
    async with _acting(ctx, data.clique_id, "admin") as (conn, clique, _):
        changes = {k: getattr(data, k) for k in fields if getattr(clique, k) != getattr(data, k)}
        if changes:
            await store.update(conn, clique.id, changes)
            if changes.get("is_private") is False:
                await store.accept_all_requests(conn, clique.id)
            elif changes.get("is_private") is True:
                await store.drop_followers(conn, clique.id)
                # An invite to a private clique skips approval: only moderators' may stay.
                await store.drop_invites_below(conn, clique.id, "moderator")
    return await _card(ctx, data.clique_id)


@command("clique.delete", input=CliqueIdInput, rest=("DELETE", "/cliques/{clique_id}"),
         scope=Scope.WRITE_CLIQUES, status=204,
         rate=Rate("clique_moderate"))
async def delete(ctx: Context, data: CliqueIdInput) -> None:
    """Delete a clique (owner only): it and its posts answer not_found from then on."""
    async with _acting(ctx, data.clique_id, "owner") as (conn, clique, _):
        await store.soft_delete(conn, clique.id)


def _page_position(found: CliqueView) -> Position:
    return Position(found.at, found.clique.id)


@command("clique.list_mine", input=PageInput, rest=("GET", "/users/me/cliques"),
         scope=Scope.READ_CLIQUES, output=CliquePage,
         rate=Rate("reads"))
async def list_mine(ctx: Context, data: PageInput) -> CliquePage:
    """The cliques you are a member of, most recently joined first."""
    rows = await lists.list_for_member(ctx.services.db, ctx.user.user_id, data.limit + 1,
                                       _before(data, "clique.list_mine"))
    page, next_cursor = page_of(rows, data.limit, _page_position)
    return CliquePage(cliques=[clique_out(v) for v in page], next_cursor=next_cursor)


@command("clique.search", input=SearchInput, rest=("GET", "/cliques"), scope=Scope.READ_CLIQUES,
         output=CliquePage,
         rate=Rate("reads"))
async def search(ctx: Context, data: SearchInput) -> CliquePage:
    """Cliques, public and private, whose name contains q (any case), newest first."""
    rows = await lists.search(ctx.services.db, ctx.user.user_id, data.q, data.limit + 1,
                              _before(data, "clique.search"))
    page, next_cursor = page_of(rows, data.limit, _page_position)
    return CliquePage(cliques=[clique_out(v) for v in page], next_cursor=next_cursor)


@command("clique.join", input=CliqueIdInput, rest=("POST", "/cliques/{clique_id}/join"),
         scope=Scope.WRITE_CLIQUES, output=JoinOut,
         rate=Rate("clique_join"))
async def join(ctx: Context, data: CliqueIdInput) -> JoinOut:
    """Join a public clique, or one you are invited to; else ask to join a private one."""
    me = ctx.user.user_id
    async with ctx.services.db.transaction() as conn:
        clique, mine = await _locked(conn, ctx, data.clique_id)
        _not_banned(mine)
        if mine.role is not None:
            return JoinOut(clique_id=clique.id, status="member")
        if not clique.is_private or mine.invited:
            await store.add_member(conn, clique.id, me)
            return JoinOut(clique_id=clique.id, status="member")
        await store.add_request(conn, clique.id, me)
    return JoinOut(clique_id=clique.id, status="requested")


@command("clique.leave", input=CliqueIdInput, rest=("POST", "/cliques/{clique_id}/leave"),
         scope=Scope.WRITE_CLIQUES, status=204,
         rate=Rate("clique_join"))
async def leave(ctx: Context, data: CliqueIdInput) -> None:
    """Leave a clique (or withdraw your join request); an owner's clique passes to an heir.

    The heir is the longest-serving admin, else moderator, else member; the only
    member cannot leave (conflict last_member): delete the clique instead.
    """
    me = ctx.user.user_id
    async with ctx.services.db.transaction() as conn:
        clique, mine = await _locked(conn, ctx, data.clique_id)
        if mine.role is None:
            if mine.requested and await store.delete_request(conn, clique.id, me):
                return
            raise CommandError("conflict", "you are not a member of this clique",
                               {"reason": "not_member"})
        heir = await store.successor(conn, clique.id) if mine.role == "owner" else None
        if mine.role == "owner" and heir is None:
            raise CommandError("conflict", "you are the only member: delete the clique instead",
                               {"reason": "last_member"})
        await store.remove_member(conn, clique.id, me)
        if heir is not None:
            await store.set_role(conn, clique.id, heir, "owner")


@command("clique.requests", input=CliquePageInput, rest=("GET", "/cliques/{clique_id}/requests"),
         scope=Scope.READ_CLIQUES, output=RequestPage,
         rate=Rate("reads"))
async def requests(ctx: Context, data: CliquePageInput) -> RequestPage:
    """Pending join requests, newest first (moderators and above)."""
    _require((await _view(ctx, data.clique_id)).viewer, "moderator")
    rows = await lists.requests(ctx.services.db, data.clique_id, data.limit + 1,
                                _before(data, "clique.requests"))
    page, next_cursor = page_of(rows, data.limit, lambda r: Position(r.requested_at, r.user.id))
    return RequestPage(requests=[request_out(r) for r in page], next_cursor=next_cursor)


@command("clique.approve", input=UserInput,
         rest=("POST", "/cliques/{clique_id}/requests/{user_id}/approve"), scope=Scope.WRITE_CLIQUES,
         output=CliqueMemberOut,
         rate=Rate("clique_moderate"))
async def approve(ctx: Context, data: UserInput) -> CliqueMemberOut:
    """Accept a join request: the requester becomes a member (moderators and above)."""
    async with _acting(ctx, data.clique_id, "moderator") as (conn, clique, _):
        if not await store.delete_request(conn, clique.id, data.user_id):
            raise _not_found("join request")
        await store.add_member(conn, clique.id, data.user_id)
        found = await store.member(conn, clique.id, data.user_id)
    assert found is not None
    return member_out(found)


@command("clique.reject", input=UserInput, rest=("DELETE", "/cliques/{clique_id}/requests/{user_id}"),
         scope=Scope.WRITE_CLIQUES, status=204,
         rate=Rate("clique_moderate"))
async def reject(ctx: Context, data: UserInput) -> None:
    """Turn a join request down (moderators and above); the user may ask again."""
    async with _acting(ctx, data.clique_id, "moderator") as (conn, clique, _):
        if not await store.delete_request(conn, clique.id, data.user_id):
            raise _not_found("join request")


@command("clique.invite", input=UserInput, rest=("PUT", "/cliques/{clique_id}/invites/{user_id}"),
         scope=Scope.WRITE_CLIQUES, output=InviteOut,
         rate=Rate("clique_invite"))
async def invite(ctx: Context, data: UserInput) -> InviteOut:
    """Invite a user (any member of a public clique; moderators and above of a private one)."""
    services, me = ctx.services, ctx.user.user_id
    _not_self(ctx, data.user_id, "you cannot invite yourself")
    async with services.db.transaction() as conn:
        clique, mine = await _locked(conn, ctx, data.clique_id)
        _require(mine, "moderator" if clique.is_private else "member")
        if not await store.user_exists(conn, data.user_id):
            raise _not_found("user")
        if await store.blocked_either_way(conn, me, data.user_id):
            raise _forbidden("you cannot invite this user", "blocked")
        theirs = await store.relation(conn, clique.id, data.user_id)
        if theirs.role is not None:
            raise CommandError("conflict", "already a member", {"reason": "already_member"})
        if theirs.banned:
            raise CommandError("conflict", "this user is banned from the clique", {"reason": "banned"})
        made, is_new = await store.invite(conn, clique.id, data.user_id, me)
    if is_new:
        await notify(services, Kind.CLIQUE_INVITE, [data.user_id], actor_id=me,
                     source_key=f"clique_invite:{clique.id}:{data.user_id}:{made.created_at.isoformat()}",
                     group_key=f"clique_invite:{clique.id}",
                     data={"clique_id": str(clique.id), "clique_name": clique.name})
    return InviteOut(clique_id=made.clique_id, user_id=made.user_id, invited_by=made.invited_by,
                     invited_at=made.created_at)


@command("clique.invites", input=PageInput, rest=("GET", "/users/me/clique-invites"),
         scope=Scope.READ_CLIQUES, output=InvitePage,
         rate=Rate("reads"))
async def invites(ctx: Context, data: PageInput) -> InvitePage:
    """Your pending invites to cliques, newest first."""
    rows = await lists.invites_for(ctx.services.db, ctx.user.user_id, data.limit + 1,
                                   _before(data, "clique.invites"))
    page, next_cursor = page_of(rows, data.limit, lambda i: _page_position(i.clique))
    return InvitePage(invites=[
        MyInviteOut(clique=clique_out(i.clique), invited_at=i.clique.at,
                    invited_by=None if i.invited_by is None else user_out(i.invited_by))
        for i in page], next_cursor=next_cursor)


@command("clique.decline_invite", input=CliqueIdInput,
         rest=("DELETE", "/users/me/clique-invites/{clique_id}"), scope=Scope.WRITE_CLIQUES, status=204,
         rate=Rate("clique_join"))
async def decline_invite(ctx: Context, data: CliqueIdInput) -> None:
    """Decline an invite to a clique."""
    await _view(ctx, data.clique_id)
    if not await store.delete_invite(ctx.services.db, data.clique_id, ctx.user.user_id):
        raise _not_found("invite")


@command("clique.set_role", input=SetRoleInput,
         rest=("PUT", "/cliques/{clique_id}/members/{user_id}/role"), scope=Scope.WRITE_CLIQUES,
         output=CliqueMemberOut,
         rate=Rate("clique_moderate"))
async def set_role(ctx: Context, data: SetRoleInput) -> CliqueMemberOut:
    """Set a member's role: the owner sets admin, moderator or member; admins moderator or member."""
    _not_self(ctx, data.user_id, "you cannot change your own role")
    async with _acting(ctx, data.clique_id, "admin") as (conn, clique, mine):
        await _member_below(conn, clique, mine, data.user_id)
        if RANKS[data.role] >= mine.rank:
            raise _forbidden("you can only give roles below your own", "rank")
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
    _not_self(ctx, data.user_id, "you cannot hand the clique to yourself")
    async with _acting(ctx, data.clique_id, "owner") as (conn, clique, _):
        if (await store.relation(conn, clique.id, data.user_id)).role is None:
            raise _not_found("member")
        await _check_quota(conn, data.user_id, "the new owner")
        # The old owner first: the schema allows one owner per clique at any moment.
        await store.set_role(conn, clique.id, ctx.user.user_id, "admin")
        await store.set_role(conn, clique.id, data.user_id, "owner")
    return await _card(ctx, data.clique_id)


@command("clique.follow", input=CliqueIdInput, rest=("PUT", "/cliques/{clique_id}/follow"),
         scope=Scope.WRITE_CLIQUES, output=CliqueOut,
         rate=Rate("clique_join"))
async def follow(ctx: Context, data: CliqueIdInput) -> CliqueOut:
    """Follow a public clique: its posts reach your home feed; you cannot post without joining."""
    async with ctx.services.db.transaction() as conn:
        clique, mine = await _locked(conn, ctx, data.clique_id)
        _not_banned(mine)
        if clique.is_private:
            raise _forbidden("only public cliques can be followed", "private")
        await store.follow(conn, clique.id, ctx.user.user_id)
    return await _card(ctx, data.clique_id)


@command("clique.unfollow", input=CliqueIdInput, rest=("DELETE", "/cliques/{clique_id}/follow"),
         scope=Scope.WRITE_CLIQUES, output=CliqueOut,
         rate=Rate("clique_join"))
async def unfollow(ctx: Context, data: CliqueIdInput) -> CliqueOut:
    """Stop following a clique; unfollowing one you do not follow is fine."""
    async with ctx.services.db.transaction() as conn:
        clique, _ = await _locked(conn, ctx, data.clique_id)
        await store.unfollow(conn, clique.id, ctx.user.user_id)
    return await _card(ctx, data.clique_id)


@command("clique.members", input=MembersInput, rest=("GET", "/cliques/{clique_id}/members"),
         scope=Scope.READ_CLIQUES, output=MemberPage,
         rate=Rate("reads"))
async def members(ctx: Context, data: MembersInput) -> MemberPage:
    """A clique's members, most recently joined first (a private clique's: members only)."""
    found = await _view(ctx, data.clique_id)
    _not_banned(found.viewer)
    if found.clique.is_private and found.viewer.role is None:
        raise _forbidden("only members see a private clique's members", "members_only")
    rows = await lists.members(ctx.services.db, data.clique_id, ctx.user.user_id, data.role,
                               data.limit + 1, _before(data, "clique.members"))
    page, next_cursor = page_of(rows, data.limit, lambda m: Position(m.joined_at, m.user.id))
    return MemberPage(members=[member_out(m) for m in page], next_cursor=next_cursor)


@command("clique.remove_member", input=UserInput,
         rest=("DELETE", "/cliques/{clique_id}/members/{user_id}"), scope=Scope.WRITE_CLIQUES, status=204,
         rate=Rate("clique_moderate"))
async def remove_member(ctx: Context, data: UserInput) -> None:
    """Remove a member ranked below you (moderators and above); they may join again."""
    _not_self(ctx, data.user_id, "to leave a clique, use clique.leave")
    async with _acting(ctx, data.clique_id, "moderator") as (conn, clique, mine):
        await _member_below(conn, clique, mine, data.user_id)
        await store.remove_member(conn, clique.id, data.user_id)


@command("clique.ban", input=BanInput, rest=("PUT", "/cliques/{clique_id}/bans/{user_id}"),
         scope=Scope.WRITE_CLIQUES, output=BanOut,
         rate=Rate("clique_moderate"))
async def ban(ctx: Context, data: BanInput) -> BanOut:
    """Ban a user ranked below you (moderators and above): ends their membership,
    following, request and invite; banning again keeps the first ban."""
    _not_self(ctx, data.user_id, "you cannot ban yourself")
    async with _acting(ctx, data.clique_id, "moderator") as (conn, clique, mine):
        if not await store.user_exists(conn, data.user_id):
            raise _not_found("user")
        _above(mine, await store.relation(conn, clique.id, data.user_id))
        await store.ban(conn, clique.id, data.user_id, ctx.user.user_id, data.reason)
        found = await store.get_ban(conn, clique.id, data.user_id)
    assert found is not None
    return ban_out(found)


@command("clique.unban", input=UserInput, rest=("DELETE", "/cliques/{clique_id}/bans/{user_id}"),
         scope=Scope.WRITE_CLIQUES, status=204,
         rate=Rate("clique_moderate"))
async def unban(ctx: Context, data: UserInput) -> None:
    """Lift a ban (moderators and above); the user may then join or ask again."""
    async with _acting(ctx, data.clique_id, "moderator") as (conn, clique, _):
        if not await store.unban(conn, clique.id, data.user_id):
            raise _not_found("ban")


@command("clique.bans", input=CliquePageInput, rest=("GET", "/cliques/{clique_id}/bans"),
         scope=Scope.READ_CLIQUES, output=BanPage,
         rate=Rate("reads"))
async def bans(ctx: Context, data: CliquePageInput) -> BanPage:
    """The clique's bans, newest first (moderators and above)."""
    _require((await _view(ctx, data.clique_id)).viewer, "moderator")
    rows = await lists.bans(ctx.services.db, data.clique_id, data.limit + 1,
                            _before(data, "clique.bans"))
    page, next_cursor = page_of(rows, data.limit, lambda b: Position(b.banned_at, b.user.id))
    return BanPage(bans=[ban_out(b) for b in page], next_cursor=next_cursor)


@command("clique.remove_item", input=ItemInput,
         rest=("DELETE", "/cliques/{clique_id}/items/{item_id}"), scope=Scope.WRITE_CLIQUES, status=204,
         rate=Rate("clique_moderate"))
async def remove_item(ctx: Context, data: ItemInput) -> None:
    """Tombstone a post, comment or reply in the clique (moderators and above; not the
    items of someone of equal or higher role, but your own)."""
    async with _acting(ctx, data.clique_id, "moderator") as (conn, clique, mine):
        item = await store.clique_item(conn, data.item_id)
        if item is None or item.clique_id != clique.id:
            raise _not_found("item in this clique")
        if item.author_id != ctx.user.user_id:
            _above(mine, await store.relation(conn, clique.id, item.author_id))
        if not item.deleted:
            await tombstone(conn, item.id)
