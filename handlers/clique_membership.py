"""Clique membership: joining and leaving, join requests, invites, following, the member list.

Private cliques take requests (approved by moderators and above) and invites; public ones
are joined at once. docs/cliques.md has the rules.
"""


from __future__ import annotations

from handlers import activities
from handlers.clique_access import (
    acting,
    clique_card,
    clique_view,
    cursor_position,
    forbidden,
    locked,
    not_banned,
    not_found,
    not_self,
    page_position,
    require_rank,
)
from handlers.clique_schemas import (
    CliqueIdInput,
    CliqueMemberOut,
    CliqueOut,
    CliquePageInput,
    InviteOut,
    InvitePage,
    JoinOut,
    MemberPage,
    MembersInput,
    MyInviteOut,
    RequestPage,
    UserInput,
    clique_out,
    member_out,
    request_out,
    user_out,
)
from handlers.commands import command
from handlers.context import Context
from handlers.errors import CommandError
from handlers.notifications import notify
from handlers.pagination import PageInput, Position, page_of
from handlers.rates import Rate
from handlers.scopes import Scope
from storage import clique_lists as lists
from storage import cliques as store
from storage.notifications import Kind


@command("clique.join", input=CliqueIdInput, rest=("POST", "/cliques/{clique_id}/join"),
         scope=Scope.WRITE_CLIQUES, output=JoinOut,
         rate=Rate("clique_join"), activity=activities.CLIQUE_JOINED)
async def join(ctx: Context, data: CliqueIdInput) -> JoinOut:
    """Join a public clique, or one you are invited to; else ask to join a private one."""
    me = ctx.user.user_id
    async with ctx.services.db.transaction() as conn:
        clique, mine = await locked(conn, ctx, data.clique_id)
        not_banned(mine)
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
        clique, mine = await locked(conn, ctx, data.clique_id)
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


@command("clique.request.list", input=CliquePageInput, rest=("GET", "/cliques/{clique_id}/requests"),
         scope=Scope.READ_CLIQUES, output=RequestPage,
         rate=Rate("reads"))
async def requests(ctx: Context, data: CliquePageInput) -> RequestPage:
    """Pending join requests, newest first (moderators and above)."""
    require_rank((await clique_view(ctx, data.clique_id)).viewer, "moderator")
    rows = await lists.requests(ctx.services.db, data.clique_id, data.limit + 1,
                                cursor_position(data, "clique.request.list"))
    page, next_cursor = page_of(rows, data.limit, lambda r: Position(r.requested_at, r.user.id))
    return RequestPage(requests=[request_out(r) for r in page], next_cursor=next_cursor)


@command("clique.request.approve", input=UserInput,
         rest=("POST", "/cliques/{clique_id}/requests/{user_id}/approve"), scope=Scope.WRITE_CLIQUES,
         output=CliqueMemberOut,
         rate=Rate("clique_moderate"))
async def approve(ctx: Context, data: UserInput) -> CliqueMemberOut:
    """Accept a join request: the requester becomes a member (moderators and above)."""
    async with acting(ctx, data.clique_id, "moderator") as (conn, clique, _):
        if not await store.delete_request(conn, clique.id, data.user_id):
            raise not_found("join request")
        await store.add_member(conn, clique.id, data.user_id)
        found = await store.member(conn, clique.id, data.user_id)
    assert found is not None
    return member_out(found)


@command("clique.request.reject", input=UserInput, rest=("DELETE", "/cliques/{clique_id}/requests/{user_id}"),
         scope=Scope.WRITE_CLIQUES, status=204,
         rate=Rate("clique_moderate"))
async def reject(ctx: Context, data: UserInput) -> None:
    """Turn a join request down (moderators and above); the user may ask again."""
    async with acting(ctx, data.clique_id, "moderator") as (conn, clique, _):
        if not await store.delete_request(conn, clique.id, data.user_id):
            raise not_found("join request")


@command("clique.invite", input=UserInput, rest=("PUT", "/cliques/{clique_id}/invites/{user_id}"),
         scope=Scope.WRITE_CLIQUES, output=InviteOut,
         rate=Rate("clique_invite"))
async def invite(ctx: Context, data: UserInput) -> InviteOut:
    """Invite a user (any member of a public clique; moderators and above of a private one)."""
    services, me = ctx.services, ctx.user.user_id
    not_self(ctx, data.user_id, "you cannot invite yourself")
    async with services.db.transaction() as conn:
        clique, mine = await locked(conn, ctx, data.clique_id)
        require_rank(mine, "moderator" if clique.is_private else "member")
        if not await store.user_exists(conn, data.user_id):
            raise not_found("user")
        if await store.blocked_either_way(conn, me, data.user_id):
            raise forbidden("you cannot invite this user", "blocked")
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


@command("clique.invite.list", input=PageInput, rest=("GET", "/users/me/clique_invites"),
         scope=Scope.READ_CLIQUES, output=InvitePage,
         rate=Rate("reads"))
async def invites(ctx: Context, data: PageInput) -> InvitePage:
    """Your pending invites to cliques, newest first."""
    rows = await lists.invites_for(ctx.services.db, ctx.user.user_id, data.limit + 1,
                                   cursor_position(data, "clique.invite.list"))
    page, next_cursor = page_of(rows, data.limit, lambda i: page_position(i.clique))
    return InvitePage(invites=[
        MyInviteOut(clique=clique_out(i.clique), invited_at=i.clique.at,
                    invited_by=None if i.invited_by is None else user_out(i.invited_by))
        for i in page], next_cursor=next_cursor)


@command("clique.invite.decline", input=CliqueIdInput,
         rest=("DELETE", "/users/me/clique_invites/{clique_id}"), scope=Scope.WRITE_CLIQUES, status=204,
         rate=Rate("clique_join"))
async def decline_invite(ctx: Context, data: CliqueIdInput) -> None:
    """Decline an invite to a clique."""
    await clique_view(ctx, data.clique_id)
    if not await store.delete_invite(ctx.services.db, data.clique_id, ctx.user.user_id):
        raise not_found("invite")


@command("clique.follow", input=CliqueIdInput, rest=("PUT", "/cliques/{clique_id}/follow"),
         scope=Scope.WRITE_CLIQUES, output=CliqueOut,
         rate=Rate("clique_join"))
async def follow(ctx: Context, data: CliqueIdInput) -> CliqueOut:
    """Follow a public clique: its posts reach your home feed; you cannot post without joining."""
    async with ctx.services.db.transaction() as conn:
        clique, mine = await locked(conn, ctx, data.clique_id)
        not_banned(mine)
        if clique.is_private:
            raise forbidden("only public cliques can be followed", "private")
        await store.follow(conn, clique.id, ctx.user.user_id)
    return await clique_card(ctx, data.clique_id)


@command("clique.unfollow", input=CliqueIdInput, rest=("DELETE", "/cliques/{clique_id}/follow"),
         scope=Scope.WRITE_CLIQUES, output=CliqueOut,
         rate=Rate("clique_join"))
async def unfollow(ctx: Context, data: CliqueIdInput) -> CliqueOut:
    """Stop following a clique; unfollowing one you do not follow is fine."""
    async with ctx.services.db.transaction() as conn:
        clique, _ = await locked(conn, ctx, data.clique_id)
        await store.unfollow(conn, clique.id, ctx.user.user_id)
    return await clique_card(ctx, data.clique_id)


@command("clique.member.list", input=MembersInput, rest=("GET", "/cliques/{clique_id}/members"),
         scope=Scope.READ_CLIQUES, output=MemberPage,
         rate=Rate("reads"))
async def members(ctx: Context, data: MembersInput) -> MemberPage:
    """A clique's members, most recently joined first (a private clique's: members only)."""
    found = await clique_view(ctx, data.clique_id)
    not_banned(found.viewer)
    if found.clique.is_private and found.viewer.role is None:
        raise forbidden("only members see a private clique's members", "members_only")
    rows = await lists.members(ctx.services.db, data.clique_id, ctx.user.user_id, data.role,
                               data.limit + 1, cursor_position(data, "clique.member.list"))
    page, next_cursor = page_of(rows, data.limit, lambda m: Position(m.joined_at, m.user.id))
    return MemberPage(members=[member_out(m) for m in page], next_cursor=next_cursor)
