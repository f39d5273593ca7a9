"""Server-to-client events: each name with its payload schema, for the event catalogue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from storage.views.media import MediaInfo


class SessionRevoked(BaseModel):
    """The connection's session ended; the server disconnects the socket right after."""

    reason: Literal["logout", "logout_all", "refresh_token_reuse", "account_deleted",
                    "password_reset", "password_changed",
                    # An OAuth app's token family ended (docs/oauth.md).
                    "grant_revoked", "app_deleted", "app_suspended", "app_scopes_reduced"]


class ServerShutdown(BaseModel):
    """This node is stopping; reconnect (to any node) after the given delay."""

    reason: str
    reconnect_after_ms: int


class Cursored(BaseModel):
    """Persistent events carry the sync cursor they advance to; drop one whose cursor you saw."""

    cursor: str


class MessageNew(Cursored):
    """A message was stored in a conversation you are a member of (also message.updated)."""

    id: str
    conversation_id: str
    seq: int
    sender_id: str
    client_id: str
    body: str | None
    media: list[Any]
    reply_to: str | None
    created_at: str
    edited_at: str | None
    deleted: bool
    reactions: dict[str, int]
    story_id: str | None = Field(default=None, description="the story this answers (story.reply)")


class MessageDeleted(Cursored):
    """A message became a tombstone; its seq stays in history."""

    id: str
    conversation_id: str
    seq: int
    deleted_by: str


class ReactionUpdated(Cursored):
    """Someone added or removed a reaction; reactions holds the new counts per emoji."""

    message_id: str
    conversation_id: str
    seq: int
    user_id: str
    emoji: str
    action: Literal["added", "removed"]
    reactions: dict[str, int]


class Receipt(Cursored):
    """A member's read and delivered marks moved forward (in groups over the broadcast
    limit, only that member's own devices get it)."""

    conversation_id: str
    user_id: str
    read_seq: int
    delivered_seq: int


class MemberJoined(Cursored):
    """Users joined a conversation (or it was created with them); new members get it too."""

    conversation_id: str
    user_ids: list[str]
    by: str
    conversation: dict[str, Any] | None = None


class MemberLeft(Cursored):
    """Users left or were removed; they receive this one, then nothing more from it."""

    conversation_id: str
    user_ids: list[str]
    by: str
    reason: Literal["left", "removed"]


class ConversationUpdated(Cursored):
    """Title or avatar changed (all members), or your own mute changed (your devices only)."""

    conversation_id: str
    title: str | None = None
    avatar_url: str | None = None
    muted_until: str | None = None
    muted: bool | None = None
    roles: list[dict[str, str]] | None = Field(
        default=None, description="[{user_id, role}] when roles changed (e.g. a new owner)")
    by: str | None = None


class Typing(BaseModel):
    """A member started or stopped typing; ephemeral (not in sync), none in groups over the
    relay limit. The server sends active=false itself when a start is not refreshed in time."""

    conversation_id: str
    user_id: str
    active: bool


class PresenceChanged(BaseModel):
    """A user you watch (presence.subscribe) came online on a first device or went offline
    with the last one; last_seen is that moment (ISO 8601)."""

    user_id: str
    status: Literal["online", "offline"]
    last_seen: str | None


class NotificationBody(BaseModel):
    """A notification, as notification.list returns it."""

    id: str
    kind: Literal["message", "mention", "reply", "reaction", "follow", "friend_request",
                  "clique_invite", "story_reply", "system"]
    group_key: str
    actor_ids: list[str] = Field(description="the most recent distinct actors first (at most 10)")
    actor_count: int
    count: int = Field(description="events folded into it while unread")
    subject: dict[str, str] | None = Field(description="{type: message|conversation|item|user, id}")
    data: dict[str, Any]
    title: str
    body: str
    created_at: str
    updated_at: str
    read_at: str | None
    cursor: str


class NotificationNew(BaseModel):
    """A notification was made for you, or an unread one grew ("A and 3 others reacted");
    mentions and replies come while you are online, messages only while you are not."""

    notification: NotificationBody
    unread_count: int


class NotificationRead(BaseModel):
    """Notifications were marked read on one of your devices; clear them and the badge."""

    ids: list[str]
    unread_count: int


class CampaignProgress(BaseModel):
    """An outreach campaign you started moved on: sent after each batch and on each status
    change; pending counts recipients not yet settled."""

    id: str
    name: str
    status: Literal["draft", "running", "paused", "done"]
    total: int
    pending: int
    sent: int
    failed: int
    skipped: int


class StoryViewer(BaseModel):
    id: str
    username: str
    display_name: str
    avatar_url: str | None


class StoryViewed(BaseModel):
    """Someone viewed your story for the first time; view_count counts distinct viewers."""

    story_id: str
    viewer: StoryViewer
    view_count: int


class SlideProcessing(BaseModel):
    """Your slide is rendering: sent when the render starts (0), then at least 5 points and
    500 ms apart; slide.ready or slide.failed ends it."""

    slide_id: str
    percent: int


class SlideReady(BaseModel):
    """Your slide finished rendering; slide is what slide.get answers (docs/slides.md)."""

    slide: dict[str, Any]


class SlideFailed(BaseModel):
    """Your slide could not be rendered: reason is timeout, ffmpeg_failed, original_missing,
    corrupt or no_video; the slide stays failed (delete it and try again)."""

    slide_id: str
    reason: str
    message: str


class ItemUpdated(BaseModel):
    """An item you subscribed to (item.subscribe) changed; only the fields that changed are
    present. At most about 4 per second per item: updates in between are merged, the newest
    value of each field winning (docs/content.md, "Engagement and live updates")."""

    model_config = ConfigDict(extra="allow")

    item_id: str
    version: int = Field(description="grows with each change (microseconds of its time); "
                                     "the highest version among the merged fields")
    reaction_count: int | None = None
    reactions: dict[str, int] | None = Field(default=None, description="count per kind")
    share_count: int | None = None
    reply_count: int | None = None
    quote_detached: bool | None = None


class CommentNew(BaseModel):
    """New answers to an item you subscribed to, in creation order; the answers of one
    flush interval (250 ms) come as one batch, none dropped."""

    item_id: str
    comments: list[dict[str, Any]] = Field(description="each an ItemOut plus author_id")


class InsightUpdated(BaseModel):
    """A figure of your item's insight changed (insight.subscribe); the whole insight, as
    insight.get_item answers it. At most one a second per item, and none while nothing
    changed (docs/analytics.md, "Insights")."""

    model_config = ConfigDict(extra="allow")

    item_id: str
    impressions: dict[str, Any]
    reach: dict[str, Any]
    engagement: dict[str, Any]


@dataclass(frozen=True)
class ServerEvent:
    name: str
    payload: type[BaseModel]
    description: str


def server_events() -> list[ServerEvent]:
    """Every event the server emits to clients."""
    return [
        ServerEvent("session.revoked", SessionRevoked, SessionRevoked.__doc__ or ""),
        ServerEvent("server.shutdown", ServerShutdown, ServerShutdown.__doc__ or ""),
        ServerEvent("message.new", MessageNew, MessageNew.__doc__ or ""),
        ServerEvent("message.updated", MessageNew, "A message's body changed (same payload as "
                    "message.new, with edited_at set)."),
        ServerEvent("message.deleted", MessageDeleted, MessageDeleted.__doc__ or ""),
        ServerEvent("reaction.updated", ReactionUpdated, ReactionUpdated.__doc__ or ""),
        ServerEvent("receipt", Receipt, Receipt.__doc__ or ""),
        ServerEvent("member.joined", MemberJoined, MemberJoined.__doc__ or ""),
        ServerEvent("member.left", MemberLeft, MemberLeft.__doc__ or ""),
        ServerEvent("conversation.updated", ConversationUpdated, ConversationUpdated.__doc__ or ""),
        ServerEvent("typing", Typing, Typing.__doc__ or ""),
        ServerEvent("presence", PresenceChanged, PresenceChanged.__doc__ or ""),
        ServerEvent("campaign.progress", CampaignProgress, CampaignProgress.__doc__ or ""),
        ServerEvent("item.updated", ItemUpdated, ItemUpdated.__doc__ or ""),
        ServerEvent("comment.new", CommentNew, CommentNew.__doc__ or ""),
        ServerEvent("insight.updated", InsightUpdated, InsightUpdated.__doc__ or ""),
        ServerEvent("notification.new", NotificationNew, NotificationNew.__doc__ or ""),
        ServerEvent("notification.read", NotificationRead, NotificationRead.__doc__ or ""),
        ServerEvent("media.ready", MediaInfo, "One of your uploads finished processing; the "
                    "payload is its metadata with width, height, blurhash and variants."),
        ServerEvent("media.failed", MediaInfo, "One of your uploads could not be processed; "
                    "failure_reason and failure_message say why. It cannot be sent."),
        ServerEvent("story.viewed", StoryViewed, StoryViewed.__doc__ or ""),
        ServerEvent("slide.processing", SlideProcessing, SlideProcessing.__doc__ or ""),
        ServerEvent("slide.ready", SlideReady, SlideReady.__doc__ or ""),
        ServerEvent("slide.failed", SlideFailed, SlideFailed.__doc__ or ""),
    ]
