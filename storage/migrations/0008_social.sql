-- Social graph (follows, requests, friendships, mutes, close friends), cliques, and the one
-- content engine: posts, comments, replies, notices, shares, stories and slides are all items.
-- docs/social-model.md explains the model and the visibility rules coded in hs_can_see().

ALTER TABLE users
    ADD COLUMN is_private      boolean NOT NULL DEFAULT false,
    ADD COLUMN follower_count  integer NOT NULL DEFAULT 0 CHECK (follower_count >= 0),
    ADD COLUMN following_count integer NOT NULL DEFAULT 0 CHECK (following_count >= 0),
    ADD COLUMN friend_count    integer NOT NULL DEFAULT 0 CHECK (friend_count >= 0);

CREATE TABLE follows (
    follower_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    followee_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (follower_id, followee_id),
    CHECK (follower_id <> followee_id)
);
CREATE INDEX follows_followee ON follows (followee_id, created_at DESC, follower_id);
CREATE INDEX follows_follower_recent ON follows (follower_id, created_at DESC, followee_id);

-- A request to follow a private account, until the account approves or rejects it.
CREATE TABLE follow_requests (
    requester_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    target_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (requester_id, target_id),
    CHECK (requester_id <> target_id)
);
CREATE INDEX follow_requests_target ON follow_requests (target_id, created_at DESC);

-- A friendship is mutual and stored once per direction, so "my friends" is one index range.
CREATE TABLE friendships (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    friend_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, friend_id),
    CHECK (user_id <> friend_id)
);
CREATE INDEX friendships_recent ON friendships (user_id, created_at DESC, friend_id);

CREATE TABLE friend_requests (
    sender_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    recipient_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sender_id, recipient_id),
    CHECK (sender_id <> recipient_id)
);
CREATE INDEX friend_requests_recipient ON friend_requests (recipient_id, created_at DESC);

-- A mute hides the muted user's items from the muter's feeds (not from direct reads).
CREATE TABLE user_mutes (
    muter_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    muted_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    until      timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (muter_id, muted_id),
    CHECK (muter_id <> muted_id)
);

-- The close-friends list a user keeps for stories (one direction: the owner's choice).
CREATE TABLE close_friends (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    friend_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, friend_id),
    CHECK (user_id <> friend_id)
);

CREATE TABLE cliques (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name           text NOT NULL,
    description    text,
    is_private     boolean NOT NULL DEFAULT false,
    avatar_url     text,
    created_by     uuid REFERENCES users (id) ON DELETE SET NULL,
    member_count   integer NOT NULL DEFAULT 0 CHECK (member_count >= 0),
    follower_count integer NOT NULL DEFAULT 0 CHECK (follower_count >= 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz
);

CREATE TABLE clique_members (
    clique_id uuid NOT NULL REFERENCES cliques (id) ON DELETE CASCADE,
    user_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role      text NOT NULL DEFAULT 'member'
              CHECK (role IN ('owner', 'admin', 'moderator', 'member')),
    joined_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (clique_id, user_id)
);
CREATE INDEX clique_members_user ON clique_members (user_id, clique_id);
CREATE INDEX clique_members_recent ON clique_members (clique_id, joined_at DESC, user_id);

-- A request to join a private clique, until a moderator approves or rejects it.
CREATE TABLE clique_join_requests (
    clique_id  uuid NOT NULL REFERENCES cliques (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (clique_id, user_id)
);

CREATE TABLE clique_invites (
    clique_id  uuid NOT NULL REFERENCES cliques (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    invited_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (clique_id, user_id)
);
CREATE INDEX clique_invites_user ON clique_invites (user_id, created_at DESC);

-- Followers see a public clique's posts in their home feed without joining (they cannot post).
CREATE TABLE clique_followers (
    clique_id  uuid NOT NULL REFERENCES cliques (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (clique_id, user_id)
);
CREATE INDEX clique_followers_user ON clique_followers (user_id, clique_id);

CREATE TABLE clique_bans (
    clique_id  uuid NOT NULL REFERENCES cliques (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    banned_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    reason     text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (clique_id, user_id)
);

-- One row per post, comment, reply, notice, share (repost), story and slide.
--   parent_id: what this answers (a comment's post, a reply's comment, a notice's notice);
--   root_id:   the top-level item of the thread (NULL for a top-level item): a thread's
--              audience is its root's, so comments are visible exactly where their root is;
--   quoted_id: the item a quote embeds; shared_id: the item a share reposts.
-- A deleted item keeps its row as a tombstone (body and media cleared) so children stay reachable.
CREATE TABLE items (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind            text NOT NULL
                    CHECK (kind IN ('post', 'comment', 'reply', 'notice', 'share', 'story', 'slide')),
    author_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    parent_id       uuid REFERENCES items (id) ON DELETE CASCADE,
    root_id         uuid REFERENCES items (id) ON DELETE CASCADE,
    quoted_id       uuid REFERENCES items (id) ON DELETE SET NULL,
    shared_id       uuid REFERENCES items (id) ON DELETE CASCADE,
    clique_id       uuid REFERENCES cliques (id) ON DELETE CASCADE,
    body            text,
    visibility      text NOT NULL DEFAULT 'public'
                    CHECK (visibility IN ('public', 'followers', 'friends', 'close_friends', 'private')),
    quote_policy    text NOT NULL DEFAULT 'public' CHECK (quote_policy IN ('public', 'followers', 'nobody')),
    -- Set by the quoted item's author: the quote stays but no longer embeds their item.
    quote_detached  boolean NOT NULL DEFAULT false,
    allow_comments  boolean NOT NULL DEFAULT true,
    reply_count     integer NOT NULL DEFAULT 0 CHECK (reply_count >= 0),
    share_count     integer NOT NULL DEFAULT 0 CHECK (share_count >= 0),
    quote_count     integer NOT NULL DEFAULT 0 CHECK (quote_count >= 0),
    reaction_count  integer NOT NULL DEFAULT 0 CHECK (reaction_count >= 0),
    -- {"like": 3, "love": 1}: kept in the same transaction as item_reactions.
    reaction_counts jsonb NOT NULL DEFAULT '{}',
    view_count      bigint NOT NULL DEFAULT 0 CHECK (view_count >= 0),
    -- Kind-specific fields (a slide's effects and processing state, a story's reply policy).
    data            jsonb NOT NULL DEFAULT '{}',
    idempotency_key text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    edited_at       timestamptz,
    deleted_at      timestamptz,
    -- Stories: gone from every list after this instant (queries compare it with the clock).
    expires_at      timestamptz,
    CHECK (root_id IS NULL OR parent_id IS NOT NULL)
);
CREATE UNIQUE INDEX items_idempotency ON items (author_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- A user's top-level items newest first: profiles, and the home feed's per-author merge.
CREATE INDEX items_author_top ON items (author_id, created_at DESC, id DESC) WHERE root_id IS NULL;
CREATE INDEX items_children ON items (parent_id, created_at, id) WHERE parent_id IS NOT NULL;
CREATE INDEX items_clique_top ON items (clique_id, created_at DESC, id DESC)
    WHERE clique_id IS NOT NULL AND root_id IS NULL;
CREATE INDEX items_quoted ON items (quoted_id) WHERE quoted_id IS NOT NULL;
-- One live share of an item per user: sharing twice is the same share; undoing deletes it.
CREATE UNIQUE INDEX items_one_share ON items (author_id, shared_id) WHERE kind = 'share';
CREATE INDEX items_shared ON items (shared_id) WHERE shared_id IS NOT NULL;
CREATE INDEX items_expiring ON items (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE item_media (
    item_id  uuid NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    media_id uuid NOT NULL REFERENCES media (id) ON DELETE CASCADE,
    position smallint NOT NULL,
    PRIMARY KEY (item_id, position)
);
CREATE INDEX item_media_media ON item_media (media_id);

-- Earlier versions of an edited item, newest last.
CREATE TABLE item_edits (
    id        bigserial PRIMARY KEY,
    item_id   uuid NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    body      text,
    -- When this version was replaced.
    edited_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX item_edits_item ON item_edits (item_id, id);

CREATE TABLE item_reactions (
    item_id    uuid NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       text NOT NULL CHECK (kind IN ('like', 'love', 'haha', 'wow', 'sad', 'angry')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (item_id, user_id)
);
CREATE INDEX item_reactions_user ON item_reactions (user_id, created_at DESC);

-- Private bookmarks.
CREATE TABLE item_saves (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    item_id    uuid NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, item_id)
);
CREATE INDEX item_saves_recent ON item_saves (user_id, created_at DESC, item_id);

CREATE TABLE item_mentions (
    item_id uuid NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (item_id, user_id)
);
CREATE INDEX item_mentions_user ON item_mentions (user_id);

-- Hashtags, lower-cased without the '#'.
CREATE TABLE item_tags (
    tag        text NOT NULL,
    item_id    uuid NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (tag, item_id)
);
CREATE INDEX item_tags_recent ON item_tags (tag, created_at DESC, item_id DESC);
CREATE INDEX item_tags_item ON item_tags (item_id);

-- Visibility, in one place: every read (feeds, item reads, comments, counts, tag lists)
-- filters with hs_can_see(viewer, item). Plain SQL functions so the planner can inline them.

CREATE FUNCTION hs_blocked(a uuid, b uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM user_blocks
                   WHERE (blocker_id = a AND blocked_id = b) OR (blocker_id = b AND blocked_id = a))
$$;

-- May `viewer` see a top-level item by `author` with this visibility, in this clique?
--   the author always; nobody across a block; clique items: public cliques to everyone
--   not banned, private cliques to members; otherwise by visibility, where a private
--   account's public items reach only its followers and friends.
CREATE FUNCTION hs_audience_allows(viewer uuid, author uuid, visibility text, clique uuid)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN viewer = author THEN true
        WHEN viewer IS NULL THEN visibility = 'public' AND clique IS NULL
             AND NOT (SELECT is_private FROM users WHERE id = author)
        WHEN hs_blocked(viewer, author) THEN false
        WHEN clique IS NOT NULL THEN
            NOT EXISTS (SELECT 1 FROM clique_bans b WHERE b.clique_id = clique AND b.user_id = viewer)
            AND (EXISTS (SELECT 1 FROM cliques c WHERE c.id = clique AND NOT c.is_private)
                 OR EXISTS (SELECT 1 FROM clique_members m
                            WHERE m.clique_id = clique AND m.user_id = viewer))
        WHEN visibility = 'public' THEN
            NOT (SELECT is_private FROM users WHERE id = author)
            OR EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = viewer AND f.followee_id = author)
            OR EXISTS (SELECT 1 FROM friendships f WHERE f.user_id = author AND f.friend_id = viewer)
        WHEN visibility = 'followers' THEN
            EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = viewer AND f.followee_id = author)
            OR EXISTS (SELECT 1 FROM friendships f WHERE f.user_id = author AND f.friend_id = viewer)
        WHEN visibility = 'friends' THEN
            EXISTS (SELECT 1 FROM friendships f WHERE f.user_id = author AND f.friend_id = viewer)
        WHEN visibility = 'close_friends' THEN
            EXISTS (SELECT 1 FROM close_friends f WHERE f.user_id = author AND f.friend_id = viewer)
        ELSE false
    END
$$;

-- May `viewer` see an item by `author` in the thread under `root`? Where the root is
-- visible, unless viewer and author block each other.
CREATE FUNCTION hs_thread_allows(viewer uuid, author uuid, root uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT (viewer = author OR viewer IS NULL OR NOT hs_blocked(viewer, author))
           AND EXISTS (SELECT 1 FROM items r WHERE r.id = root
                       AND hs_audience_allows(viewer, r.author_id, r.visibility, r.clique_id))
$$;

-- May `viewer` see this item? A child (comment, reply) is visible where its root is;
-- a share where both the share and the shared item are.
CREATE FUNCTION hs_can_see(viewer uuid, i items) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN i.root_id IS NULL THEN hs_audience_allows(viewer, i.author_id, i.visibility, i.clique_id)
        ELSE hs_thread_allows(viewer, i.author_id, i.root_id)
    END
    AND (i.shared_id IS NULL OR EXISTS (
        SELECT 1 FROM items s WHERE s.id = i.shared_id
        AND hs_thread_allows(viewer, s.author_id, coalesce(s.root_id, s.id))))
$$;
