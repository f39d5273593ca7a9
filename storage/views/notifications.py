"""Notifications as clients see them: the stored row plus a title and body in plain words."""

from __future__ import annotations

from typing import Any

from storage.notifications import Kind, Notification


def _who(n: Notification) -> str:
    name = str(n.data.get("actor_name") or "Someone")
    others = n.actor_count - 1
    return name if others <= 0 else f"{name} and {others} other{'s' if others > 1 else ''}"


def render(n: Notification) -> tuple[str, str]:
    """A notification's title and body in plain words, for pushes and simple clients."""
    d, who, text = n.data, _who(n), str(n.data.get("preview") or "")
    if n.kind == Kind.MESSAGE:
        group = d.get("conversation_kind") == "group"
        title = str((d.get("conversation_title") if group else None) or d.get("actor_name")
                    or "New message")
        latest = f"{d.get('actor_name')}: {text}" if group else text
        return title, latest if n.count == 1 else f"{n.count} new messages · {latest}"
    # Items (posts, comments, stories, ...) say what was answered or reacted to; messages
    # carry no item_kind.
    thing = f"your {d.get('item_kind')}" if d.get("item_kind") else "your message"
    titles = {
        Kind.MENTION: f"{who} mentioned you",
        Kind.REPLY: (f"{who} commented on your {d.get('parent_kind') or 'post'}"
                     if d.get("item_kind") == "comment"
                     else f"{who} replied to your {d.get('parent_kind') or 'message'}"),
        Kind.REACTION: f"{who} reacted {d.get('emoji') or ''} to {thing}".replace("  ", " "),
        Kind.SHARE: f"{who} shared {thing}",
        Kind.QUOTE: f"{who} quoted your {d.get('quoted_kind') or 'post'}",
        Kind.FOLLOW: (f"{who} asked to follow you" if d.get("request")
                      else f"{who} accepted your follow request" if d.get("accepted")
                      else f"{who} followed you"),
        Kind.FRIEND_REQUEST: (f"{who} accepted your friend request" if d.get("accepted")
                              else f"{who} sent you a friend request"),
        Kind.CLIQUE_INVITE: f"{who} invited you to {d.get('clique_name') or 'a clique'}",
        Kind.STORY_REPLY: f"{who} replied to your story",
    }
    if n.kind in titles:
        return titles[Kind(n.kind)], text
    return str(d.get("title") or "HotSpot"), str(d.get("body") or text)


def wire(n: Notification) -> dict[str, Any]:
    """A notification as clients get it, with its rendered title and body."""
    title, body = render(n)
    return {**n.to_wire(), "title": title, "body": body}
