-- Notifications (grouped per key while unread, idempotent per source event), per-kind and
-- per-channel preferences, quiet hours, and push subscriptions (Web Push, FCM, APNs).

-- Bumped on every fold into a notification: the list's order (newest activity first) and cursor.
CREATE SEQUENCE notification_seq;

CREATE TABLE notifications (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- No CHECK on kind: the kinds are an enum in code, and a new one needs no migration.
    kind         text NOT NULL,
    group_key    text NOT NULL,
    -- The most recent distinct actors first (at most 10); actor_count counts every one.
    actor_ids    uuid[] NOT NULL DEFAULT '{}',
    actor_count  integer NOT NULL DEFAULT 0,
    -- How many source events were folded into this row while it was unread.
    count        integer NOT NULL DEFAULT 1,
    subject_type text CHECK (subject_type IN ('message', 'conversation', 'item', 'user')),
    subject_id   uuid,
    data         jsonb NOT NULL DEFAULT '{}',
    seq          bigint NOT NULL DEFAULT nextval('notification_seq'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    read_at      timestamptz,
    CHECK ((subject_type IS NULL) = (subject_id IS NULL))
);
CREATE INDEX notifications_list ON notifications (user_id, seq DESC);
-- One open (unread) row per group: later events fold into it; once read, a new row starts.
-- It also serves the unread count.
CREATE UNIQUE INDEX notifications_open_group ON notifications (user_id, group_key)
    WHERE read_at IS NULL;

-- Which source events already reached a user: a redelivered job finds its key and does nothing.
CREATE TABLE notification_sources (
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    source_key      text NOT NULL,
    actor_id        uuid,
    notification_id uuid REFERENCES notifications (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, source_key)
);
CREATE INDEX notification_sources_actor ON notification_sources (notification_id, actor_id);
CREATE INDEX notification_sources_created ON notification_sources (created_at);

-- Only choices that differ from the defaults in code need a row, but any may have one.
CREATE TABLE notification_preferences (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       text NOT NULL,
    channel    text NOT NULL CHECK (channel IN ('in_app', 'push', 'email', 'sms')),
    enabled    boolean NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, kind, channel)
);

-- Local wall-clock times in the user's time zone; start > end spans midnight.
CREATE TABLE notification_quiet_hours (
    user_id     uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    start_local time NOT NULL,
    end_local   time NOT NULL,
    timezone    text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (start_local <> end_local)
);

-- One row per device. A subscription made from a login session goes when the session row goes,
-- and pushes skip it once that session is revoked or expired.
CREATE TABLE push_subscriptions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id      uuid REFERENCES sessions (id) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('webpush', 'fcm', 'apns')),
    endpoint        text,
    p256dh          text,
    auth            text,
    token           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_success_at timestamptz,
    last_error      text,
    last_error_at   timestamptz,
    -- A 429's Retry-After: nothing is sent to this subscription before then.
    backoff_until   timestamptz,
    CHECK (CASE WHEN kind = 'webpush'
                THEN endpoint IS NOT NULL AND p256dh IS NOT NULL AND auth IS NOT NULL
                     AND token IS NULL
                ELSE token IS NOT NULL AND endpoint IS NULL AND p256dh IS NULL AND auth IS NULL
           END)
);
CREATE UNIQUE INDEX push_subscriptions_endpoint ON push_subscriptions (endpoint)
    WHERE endpoint IS NOT NULL;
CREATE UNIQUE INDEX push_subscriptions_token ON push_subscriptions (kind, token)
    WHERE token IS NOT NULL;
CREATE INDEX push_subscriptions_user ON push_subscriptions (user_id, created_at);
