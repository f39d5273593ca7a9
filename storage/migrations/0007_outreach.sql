-- Outreach: a ledger of sent email/SMS jobs (idempotent redelivery), per-channel opt-outs,
-- campaigns with their materialised recipients, and a shared send throttle.

-- One row per email/SMS job: 'sending' is committed before the provider is called and
-- 'sent' after, so a redelivered job that finds 'sent' does nothing.
CREATE TABLE outreach_sends (
    job_id     text PRIMARY KEY,
    channel    text NOT NULL CHECK (channel IN ('email', 'sms', 'push')),
    recipient  text NOT NULL,
    status     text NOT NULL CHECK (status IN ('sending', 'sent', 'failed')),
    attempts   integer NOT NULL DEFAULT 1,
    error      text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outreach_sends_created ON outreach_sends (created_at);

-- Opted out of non-transactional messages on one channel (verification mail still goes out).
CREATE TABLE outreach_optouts (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    channel     text NOT NULL CHECK (channel IN ('email', 'sms', 'push')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, channel)
);

CREATE TABLE campaigns (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    channel     text NOT NULL CHECK (channel IN ('email', 'sms', 'push')),
    template    text,
    subject     text,
    body_text   text,
    body_html   text,
    audience    jsonb NOT NULL,
    status      text NOT NULL DEFAULT 'draft'
                CHECK (status IN ('draft', 'running', 'paused', 'done')),
    batches     integer NOT NULL DEFAULT 0,
    created_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    started_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    started_at  timestamptz,
    finished_at timestamptz,
    CHECK (template IS NOT NULL OR body_text IS NOT NULL)
);
CREATE INDEX campaigns_created ON campaigns (created_at DESC, id DESC);

-- Frozen when the campaign starts; each row is claimed ('sending') in its own commit before
-- the send and settled after, so no recipient gets it twice.
CREATE TABLE campaign_recipients (
    campaign_id uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    batch       integer NOT NULL,
    status      text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'skipped')),
    attempts    integer NOT NULL DEFAULT 0,
    error       text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, user_id)
);
CREATE INDEX campaign_recipients_batch ON campaign_recipients (campaign_id, batch)
    WHERE status IN ('pending', 'sending');

-- The next free send slot per key, shared by every worker so a rate holds cluster-wide.
CREATE TABLE outreach_throttle (
    key     text PRIMARY KEY,
    next_at timestamptz NOT NULL
);
