"""The server-side analytics catalogue: what each activity command's success records.

Each command names its entry (`activity=activities.ITEM_CREATED`);
tests/handlers/test_analytics_capture.py checks the commands the issue lists declare one. Event names are
`resource.past_participle`, like the events the server sends. The pickers read the validated
input and the result only; an owner left None is one the result does not show (the worker
may resolve it from the subject). docs/analytics.md lists which command records which.
"""

from __future__ import annotations

import uuid
from typing import Any

from handlers.activity import Activity, field


def _other_profile(data: Any, result: Any, actor: uuid.UUID | None) -> bool:
    # Looking at your own profile is no profile visit.
    return getattr(result, "id", None) != actor


def _get(source: Any, name: str) -> Any:
    return source.get(name) if isinstance(source, dict) else getattr(source, name, None)


SIGNED_UP = Activity("user.signed_up", "user", subject=field("user", "id"),
                     actor=field("user", "id"))
LOGGED_IN = Activity("user.logged_in", "user", subject=field("user", "id"),
                     actor=field("user", "id"))
MESSAGE_SENT = Activity(
    "message.sent", "conversation", subject=field("conversation_id"),
    props=lambda data, result: {"has_media": bool(_get(result, "media")),
                                "story_reply": _get(result, "story_id") is not None})
ITEM_CREATED = Activity("item.created", "item", subject=field("id"), owner=field("author", "id"),
                        props=lambda data, result: {"kind": result.kind})
ITEM_REACTED = Activity("item.reacted", "item", subject=field("item_id"),
                        props=lambda data, result: {"kind": data.kind})
ITEM_SHARED = Activity("item.shared", "item", subject=field("item_id"),
                       props=lambda data, result: {"created": result.created})
ITEM_SAVED = Activity("item.saved", "item", subject=field("item_id"))
USER_FOLLOWED = Activity("user.followed", "user", subject=field("user_id"),
                         owner=field("user_id"),
                         props=lambda data, result: {"status": result.status})
CLIQUE_JOINED = Activity("clique.joined", "clique", subject=field("clique_id"),
                         props=lambda data, result: {"status": result.status})
STORY_POSTED = Activity("story.posted", "story", subject=field("id"), owner=field("author", "id"))
STORY_VIEWED = Activity("story.viewed", "story", subject=field("story_id"),
                        props=lambda data, result: {"first_view": result.counted})
SLIDE_VIEWED = Activity("slide.viewed", "slide", subject=field("slide_id"),
                        props=lambda data, result: {"first_view": result.counted})
PROFILE_VIEWED = Activity("profile.viewed", "user", subject=field("id"), owner=field("id"),
                          when=_other_profile)
# The query text is not recorded (it can say more about a person than they meant to share):
# its length and how many results came back are.
CLIQUE_SEARCHED = Activity(
    "clique.searched", "clique",
    props=lambda data, result: {"query_length": len(data.q or ""),
                                "results": len(result.cliques)})
