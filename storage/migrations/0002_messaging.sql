-- Conversations (DMs and groups), messages, reactions, blocks, and the event stream clients sync from.

CREATE TABLE user_blocks (
    blocker_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (blocker_id, blocked_id),
    CHECK (blocker_id <> blocked_id)
);
CREATE INDEX user_blocks_blocked ON user_blocks (blocked_id);

CREATE TABLE conversations (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind            text NOT NULL CHECK (kind IN ('direct', 'group')),
    title           text,
    avatar_url      text,
    -- For DMs: the two member ids, smaller first, so a pair has at most one DM.
    direct_key      text UNIQUE,
    created_by      uuid REFERENCES users (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- The seq of the newest message; seqs are gap-free per conversation.
    last_seq        bigint NOT NULL DEFAULT 0,
    last_message_at timestamptz,
    member_count    integer NOT NULL DEFAULT 0,
    CHECK ((kind = 'direct') = (direct_key IS NOT NULL))
);

CREATE TABLE conversation_members (
    conversation_id    uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role               text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member')),
    active             boolean NOT NULL DEFAULT true,
    joined_at          timestamptz NOT NULL DEFAULT now(),
    -- A member syncs the events from their member.joined up to their member.left.
    joined_event_id    bigint NOT NULL DEFAULT 0,
    left_event_id      bigint,
    muted_until        timestamptz,
    last_read_seq      bigint NOT NULL DEFAULT 0,
    last_delivered_seq bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX conversation_members_user ON conversation_members (user_id, conversation_id);

CREATE TABLE messages (
    id              uuid PRIMARY KEY,
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             bigint NOT NULL,
    sender_id       uuid NOT NULL REFERENCES users (id),
    client_id       text NOT NULL,
    body            text,
    media           jsonb NOT NULL DEFAULT '[]',
    reply_to        uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    edited_at       timestamptz,
    deleted_at      timestamptz,
    deleted_by      uuid,
    UNIQUE (conversation_id, seq),
    UNIQUE (sender_id, client_id)
);

CREATE TABLE message_reactions (
    message_id uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    emoji      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, user_id, emoji)
);

-- Every persistent change a member must learn about, in one total order. Ids are
-- assigned and committed under one advisory lock, so a reader never sees id N+1
-- before id N: a sync cursor (the last id seen) never skips an event.
CREATE TABLE conversation_events (
    id              bigint PRIMARY KEY,
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    kind            text NOT NULL,
    payload         jsonb NOT NULL,
    -- When set, only these users get the event (e.g. a receipt is for the member's own devices).
    audience        uuid[],
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversation_events_conversation ON conversation_events (conversation_id, id);
CREATE INDEX conversation_events_created ON conversation_events (created_at);
CREATE SEQUENCE conversation_event_ids;

-- Events up to this id have been purged: a sync cursor below it gets {gap: true}.
CREATE TABLE event_horizon (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    purged_to  bigint NOT NULL DEFAULT 0
);
INSERT INTO event_horizon DEFAULT VALUES;

-- The last event id the relay published to the bus; it resumes from here after a restart.
CREATE TABLE event_relay (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    published_to   bigint NOT NULL DEFAULT 0
);
INSERT INTO event_relay DEFAULT VALUES;
