"""The social graph: follow, follow requests, friends, mutes, close friends, lists, suggestions."""

from __future__ import annotations

import uuid
from datetime import timedelta

from handlers import activities
from handlers.commands import command
from handlers.context import Context
from handlers.errors import CommandError, invalid
from handlers.network_schemas import (
    FollowOut,
    FriendOut,
    GraphUserOut,
    MutedUserOut,
    MuteInput,
    MutePage,
    SuggestionList,
    SuggestionOut,
    SuggestionsInput,
    UserListInput,
    UserMuteOut,
    UserPage,
    UserRef,
)
from handlers.notifications import notify
from handlers.pagination import PageInput, Position, decode_cursor, page_of
from handlers.rates import Rate
from handlers.scopes import Scope
from storage import network_lists as lists
from storage import networks as store
from storage import users as user_store
from storage.networks import Change, GraphUser, Relation
from storage.notifications import Kind

READ, WRITE = "social:read", "social:write"

# Limits (docs/networks.md, docs/limits.md). Rates count every call, repeats included.
FRIEND_REQUESTS_PENDING_MAX = 500
CLOSE_FRIENDS_MAX = 500
MUTES_MAX = 1000
# Suggestions look at your most recent connections, and at each one's most recent ones.
SUGGESTION_CONNECTIONS_MAX = 500
SUGGESTION_FANOUT_MAX = 200


def _other(ctx: Context, user_id: uuid.UUID) -> uuid.UUID:
    if user_id == ctx.user.user_id:
        raise invalid("user_id", "this must be another user", "self")
    return user_id


async def _known(ctx: Context, user_id: uuid.UUID) -> uuid.UUID:
    """Another live user's id, for commands that change nothing when there is nothing to undo."""
    if await user_store.get_user(ctx.services.db, _other(ctx, user_id)) is None:
        raise CommandError("not_found", "no such user")
    return user_id


def _refuse(change: Change, *, limit: int = 0, full_reason: str = "") -> Change:
    """Raise the error a refused change stands for; pass a successful one through."""
    if change.outcome == "not_found":
        raise CommandError("not_found", "no such user")
    if change.outcome == "no_request":
        raise CommandError("not_found", "no pending request from this user")
    if change.outcome == "blocked":
        # Never say which of the two blocked the other.
        raise CommandError("forbidden", "not possible with this user", {"reason": "blocked"})
    if change.outcome == "full":
        raise CommandError("conflict", f"at most {limit}", {"reason": full_reason, "limit": limit})
    return change


def _position(user: GraphUser) -> Position:
    return Position(user.since, user.id)


async def _page(ctx: Context, relation: Relation, owner: uuid.UUID, data: PageInput,
                name: str) -> UserPage:
    after = decode_cursor(data.cursor, name)
    rows = await lists.graph_page(ctx.services.db, relation, owner, ctx.user.user_id,
                                  data.limit + 1, None if after is None else (after.at, after.id))
    users, next_cursor = page_of(rows, data.limit, _position)
    return UserPage(users=[GraphUserOut.of(u) for u in users], next_cursor=next_cursor)


async def _visible_list(ctx: Context, data: UserListInput, relation: Relation, name: str) -> UserPage:
    access = await lists.list_access(ctx.services.db, ctx.user.user_id, data.user_id)
    if access == "not_found":
        raise CommandError("not_found", "no such user")
    if access == "forbidden":
        raise CommandError("forbidden", "this account is private", {"reason": "private_account"})
    return await _page(ctx, relation, data.user_id, data, name)


# --- follow ----------------------------------------------------------------------------------


@command("user.follow", input=UserRef, rest=("PUT", "/users/me/following/{user_id}"),
         scope=Scope.WRITE_NETWORK,
         output=FollowOut,
         rate=Rate("follow"), activity=activities.USER_FOLLOWED)
async def follow(ctx: Context, data: UserRef) -> FollowOut:
    """Follow a user; a private account gets a follow request to approve instead."""
    me, target = ctx.user.user_id, _other(ctx, data.user_id)
    change = _refuse(await store.follow(ctx.services.db, me, target))
    if change.changed and change.outcome == "following":
        await ctx.services.presence.access_changed([me], [target])
        await notify(ctx.services, Kind.FOLLOW, [target], source_key=f"follow:{me}:{target}",
                     actor_id=me, subject=("user", me), group_key=f"follow:{target}")
    elif change.changed:
        await notify(ctx.services, Kind.FOLLOW, [target], source_key=f"follow_request:{me}:{target}",
                     actor_id=me, subject=("user", me), data={"request": True},
                     group_key=f"follow_request:{target}")
    return FollowOut(user_id=target, status="requested" if change.outcome == "requested" else "following")


@command("user.unfollow", input=UserRef, rest=("DELETE", "/users/me/following/{user_id}"),
         scope=Scope.WRITE_NETWORK, status=204,
         rate=Rate("follow"))
async def unfollow(ctx: Context, data: UserRef) -> None:
    """Stop following a user, or withdraw your pending follow request; repeating is fine."""
    me, target = ctx.user.user_id, _other(ctx, data.user_id)
    if _refuse(await store.unfollow(ctx.services.db, me, target)).changed:
        await ctx.services.presence.access_changed([me], [target])


@command("follower.remove", input=UserRef, rest=("DELETE", "/users/me/followers/{user_id}"),
         scope=Scope.WRITE_NETWORK, status=204,
         rate=Rate("network_manage"))
async def remove_follower(ctx: Context, data: UserRef) -> None:
    """Make a user stop following you (they are not told); repeating is fine."""
    me, follower = ctx.user.user_id, _other(ctx, data.user_id)
    if _refuse(await store.remove_follower(ctx.services.db, me, follower)).changed:
        await ctx.services.presence.access_changed([me], [follower])


@command("follow_request.list", input=PageInput, rest=("GET", "/users/me/follow_requests"),
         scope=Scope.READ_NETWORK, output=UserPage,
         rate=Rate("reads"))
async def follow_requests(ctx: Context, data: PageInput) -> UserPage:
    """Who asks to follow you, newest first."""
    return await _page(ctx, "follow_requests", ctx.user.user_id, data, "follow_request.list")


@command("follow_request.list_sent", input=PageInput, rest=("GET", "/users/me/follow_requests/sent"),
         scope=Scope.READ_NETWORK, output=UserPage,
         rate=Rate("reads"))
async def follow_requests_sent(ctx: Context, data: PageInput) -> UserPage:
    """Your pending follow requests to private accounts, newest first."""
    return await _page(ctx, "follow_requests_sent", ctx.user.user_id, data, "follow_request.list_sent")


@command("follow_request.approve", input=UserRef,
         rest=("POST", "/users/me/follow_requests/{user_id}/approve"), scope=Scope.WRITE_NETWORK, status=204,
         rate=Rate("network_manage"))
async def approve_follow_request(ctx: Context, data: UserRef) -> None:
    """Let a user who asked follow you; approving someone who already follows you is fine."""
    me, requester = ctx.user.user_id, _other(ctx, data.user_id)
    change = _refuse(await store.approve_request(ctx.services.db, me, requester))
    if change.changed:
        await ctx.services.presence.access_changed([me], [requester])
        await notify(ctx.services, Kind.FOLLOW, [requester],
                     source_key=f"follow_accept:{me}:{requester}", actor_id=me,
                     subject=("user", me), data={"accepted": True})


@command("follow_request.reject", input=UserRef, rest=("DELETE", "/users/me/follow_requests/{user_id}"),
         scope=Scope.WRITE_NETWORK, status=204,
         rate=Rate("network_manage"))
async def reject_follow_request(ctx: Context, data: UserRef) -> None:
    """Turn down a follow request (the requester is not told); repeating is fine."""
    await store.reject_request(ctx.services.db, ctx.user.user_id, await _known(ctx, data.user_id))


async def approve_all_follow_requests(ctx: Context) -> int:
    """After the caller's account became public: approve every pending request; how many."""
    me = ctx.user.user_id
    approved = await store.approve_all_requests(ctx.services.db, me)
    if approved:
        await ctx.services.presence.access_changed([me], approved)
        await notify(ctx.services, Kind.FOLLOW, approved,
                     source_key=f"follow_accept_all:{me}:{ctx.request_id}", actor_id=me,
                     subject=("user", me), data={"accepted": True})
    return len(approved)


# --- friends ---------------------------------------------------------------------------------


async def _friends_now(ctx: Context, other: uuid.UUID) -> None:
    me = ctx.user.user_id
    await ctx.services.presence.access_changed([me], [other])
    await notify(ctx.services, Kind.FRIEND_REQUEST, [other], source_key=f"friend_accept:{me}:{other}",
                 actor_id=me, subject=("user", me), data={"accepted": True})


@command("friend_request.send", input=UserRef, rest=("PUT", "/users/me/friend_requests/sent/{user_id}"),
         scope=Scope.WRITE_NETWORK, output=FriendOut,
         rate=Rate("friend_request"))
async def friend_request(ctx: Context, data: UserRef) -> FriendOut:
    """Ask a user to be friends; if they already asked you, you become friends at once."""
    me, other = ctx.user.user_id, _other(ctx, data.user_id)
    change = _refuse(await store.friend_request(ctx.services.db, me, other,
                                                FRIEND_REQUESTS_PENDING_MAX),
                     limit=FRIEND_REQUESTS_PENDING_MAX, full_reason="too_many_pending")
    if change.changed and change.outcome == "friends":
        await _friends_now(ctx, other)
    elif change.changed:
        await notify(ctx.services, Kind.FRIEND_REQUEST, [other],
                     source_key=f"friend_request:{me}:{other}", actor_id=me, subject=("user", me),
                     group_key=f"friend_request:{other}")
    return FriendOut(user_id=other, status="friends" if change.outcome == "friends" else "requested")


@command("friend_request.accept", input=UserRef, rest=("POST", "/users/me/friend_requests/{user_id}/accept"),
         scope=Scope.WRITE_NETWORK, output=FriendOut,
         rate=Rate("network_manage"))
async def accept_friend(ctx: Context, data: UserRef) -> FriendOut:
    """Accept a user's friend request; accepting someone already your friend is fine."""
    other = _other(ctx, data.user_id)
    change = _refuse(await store.accept_friend(ctx.services.db, ctx.user.user_id, other))
    if change.changed:
        await _friends_now(ctx, other)
    return FriendOut(user_id=other, status="friends")


@command("friend_request.decline", input=UserRef, rest=("DELETE", "/users/me/friend_requests/{user_id}"),
         scope=Scope.WRITE_NETWORK, status=204,
         rate=Rate("network_manage"))
async def decline_friend(ctx: Context, data: UserRef) -> None:
    """Turn down a friend request (the sender is not told); repeating is fine."""
    await store.drop_friend_request(ctx.services.db, await _known(ctx, data.user_id), ctx.user.user_id)


@command("friend_request.cancel", input=UserRef, rest=("DELETE", "/users/me/friend_requests/sent/{user_id}"),
         scope=Scope.WRITE_NETWORK, status=204,
         rate=Rate("network_manage"))
async def cancel_friend_request(ctx: Context, data: UserRef) -> None:
    """Withdraw your friend request; repeating is fine."""
    await store.drop_friend_request(ctx.services.db, ctx.user.user_id, await _known(ctx, data.user_id))


@command("friend.remove", input=UserRef, rest=("DELETE", "/users/me/friends/{user_id}"),
         scope=Scope.WRITE_NETWORK, status=204,
         rate=Rate("network_manage"))
async def remove_friend(ctx: Context, data: UserRef) -> None:
    """End a friendship, for both of you; repeating is fine."""
    me, other = ctx.user.user_id, _other(ctx, data.user_id)
    if _refuse(await store.unfriend(ctx.services.db, me, other)).changed:
        await ctx.services.presence.access_changed([me], [other])


@command("friend_request.list", input=PageInput, rest=("GET", "/users/me/friend_requests"),
         scope=Scope.READ_NETWORK, output=UserPage,
         rate=Rate("reads"))
async def friend_requests(ctx: Context, data: PageInput) -> UserPage:
    """Who asks to be your friend, newest first."""
    return await _page(ctx, "friend_requests", ctx.user.user_id, data, "friend_request.list")


@command("friend_request.list_sent", input=PageInput, rest=("GET", "/users/me/friend_requests/sent"),
         scope=Scope.READ_NETWORK, output=UserPage,
         rate=Rate("reads"))
async def friend_requests_sent(ctx: Context, data: PageInput) -> UserPage:
    """Your pending friend requests, newest first."""
    return await _page(ctx, "friend_requests_sent", ctx.user.user_id, data, "friend_request.list_sent")


# --- mutes and close friends -----------------------------------------------------------------


@command("user.mute", input=MuteInput, rest=("PUT", "/users/me/mutes/{user_id}"), scope=Scope.WRITE_NETWORK,
         output=UserMuteOut,
         rate=Rate("network_manage"))
async def mute(ctx: Context, data: MuteInput) -> UserMuteOut:
    """Hide a user's items from your feeds, for good or until a time; they are not told."""
    other, now = _other(ctx, data.user_id), ctx.services.clock()
    until = data.until
    if until is not None and until <= now:
        raise invalid("until", "must be in the future", "past")
    if data.duration_s is not None:
        until = now + timedelta(seconds=data.duration_s)
    _refuse(await store.mute(ctx.services.db, ctx.user.user_id, other, until, now, MUTES_MAX),
            limit=MUTES_MAX, full_reason="too_many_mutes")
    return UserMuteOut(user_id=other, muted=True, until=until)


@command("user.unmute", input=UserRef, rest=("DELETE", "/users/me/mutes/{user_id}"),
         scope=Scope.WRITE_NETWORK,
         output=UserMuteOut,
         rate=Rate("network_manage"))
async def unmute(ctx: Context, data: UserRef) -> UserMuteOut:
    """Show a muted user's items in your feeds again; repeating is fine."""
    other = await _known(ctx, data.user_id)
    await store.unmute(ctx.services.db, ctx.user.user_id, other)
    return UserMuteOut(user_id=other, muted=False, until=None)


@command("mute.list", input=PageInput, rest=("GET", "/users/me/mutes"), scope=Scope.READ_NETWORK,
         output=MutePage,
         rate=Rate("reads"))
async def mutes(ctx: Context, data: PageInput) -> MutePage:
    """The users you mute (mutes still in force), newest first."""
    after = decode_cursor(data.cursor, "mute.list")
    rows = await lists.mutes_page(ctx.services.db, ctx.user.user_id, ctx.services.clock(),
                                  data.limit + 1, None if after is None else (after.at, after.id))
    users, next_cursor = page_of(rows, data.limit, _position)
    return MutePage(users=[MutedUserOut.of_mute(u) for u in users], next_cursor=next_cursor)


@command("close_friend.add", input=UserRef, rest=("PUT", "/users/me/close_friends/{user_id}"),
         scope=Scope.WRITE_NETWORK, status=204,
         rate=Rate("network_manage"))
async def add_close_friend(ctx: Context, data: UserRef) -> None:
    """Put a user on your close-friends list (stories for close friends); repeating is fine."""
    _refuse(await store.add_close_friend(ctx.services.db, ctx.user.user_id, _other(ctx, data.user_id),
                                         CLOSE_FRIENDS_MAX),
            limit=CLOSE_FRIENDS_MAX, full_reason="close_friends_full")


@command("close_friend.remove", input=UserRef, rest=("DELETE", "/users/me/close_friends/{user_id}"),
         scope=Scope.WRITE_NETWORK, status=204,
         rate=Rate("network_manage"))
async def remove_close_friend(ctx: Context, data: UserRef) -> None:
    """Take a user off your close-friends list; repeating is fine."""
    await store.remove_close_friend(ctx.services.db, ctx.user.user_id, await _known(ctx, data.user_id))


@command("close_friend.list", input=PageInput, rest=("GET", "/users/me/close_friends"),
         scope=Scope.READ_NETWORK,
         output=UserPage,
         rate=Rate("reads"))
async def close_friends(ctx: Context, data: PageInput) -> UserPage:
    """Your close-friends list, most recently added first (only you see it)."""
    return await _page(ctx, "close_friends", ctx.user.user_id, data, "close_friend.list")


# --- lists and suggestions -------------------------------------------------------------------


@command("follower.list", input=UserListInput, rest=("GET", "/users/{user_id}/followers"),
         scope=Scope.READ_NETWORK, output=UserPage,
         rate=Rate("reads"))
async def followers(ctx: Context, data: UserListInput) -> UserPage:
    """A user's followers, newest first; a private account's only for itself, followers and friends."""
    return await _visible_list(ctx, data, "followers", "follower.list")


@command("following.list", input=UserListInput, rest=("GET", "/users/{user_id}/following"),
         scope=Scope.READ_NETWORK, output=UserPage,
         rate=Rate("reads"))
async def following(ctx: Context, data: UserListInput) -> UserPage:
    """Whom a user follows, newest first; private accounts as for follower.list."""
    return await _visible_list(ctx, data, "following", "following.list")


@command("friend.list", input=UserListInput, rest=("GET", "/users/{user_id}/friends"),
         scope=Scope.READ_NETWORK, output=UserPage,
         rate=Rate("reads"))
async def friends(ctx: Context, data: UserListInput) -> UserPage:
    """A user's friends, newest friendships first; private accounts as for follower.list."""
    return await _visible_list(ctx, data, "friends", "friend.list")


@command("suggestion.list", input=SuggestionsInput, rest=("GET", "/users/me/suggestions"),
         scope=Scope.READ_NETWORK, output=SuggestionList,
         rate=Rate("reads"))
async def suggestions(ctx: Context, data: SuggestionsInput) -> SuggestionList:
    """People you may know: friends of friends and whom your follows follow, most mutual first."""
    rows = await lists.suggestions(ctx.services.db, ctx.user.user_id, data.limit,
                                   SUGGESTION_CONNECTIONS_MAX, SUGGESTION_FANOUT_MAX)
    return SuggestionList(users=[SuggestionOut.of(s) for s in rows])
