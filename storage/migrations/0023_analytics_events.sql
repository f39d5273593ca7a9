-- Analytics (issue 12): raw events partitioned by UTC day, and roll-ups that outlive them.
-- Partitions are created ahead and dropped after the retention by storage/analytics.py;
-- this migration makes none, the worker's maintenance task does on its first run.

CREATE TABLE analytics_events (
    event_id uuid NOT NULL,
    name text NOT NULL,
    source text NOT NULL CHECK (source IN ('server', 'client')),
    occurred_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    user_id uuid,
    subject_type text,
    subject_id uuid,
    owner_id uuid,
    props jsonb NOT NULL DEFAULT '{}',
    ip_hash text,
    platform text,
    -- A partitioned table's unique key must hold the partition key; an event's occurred_at
    -- is part of the event, so a redelivered event is the same (event_id, occurred_at).
    PRIMARY KEY (event_id, occurred_at)
) PARTITION BY RANGE (occurred_at);

-- Account deletion and the data export look events up by their user.
CREATE INDEX analytics_events_user ON analytics_events (user_id, occurred_at)
    WHERE user_id IS NOT NULL;
-- Insights on one subject within the raw retention (uniques, retention curves).
CREATE INDEX analytics_events_subject ON analytics_events (subject_id, name, occurred_at)
    WHERE subject_id IS NOT NULL;

-- Roll-ups: how many events per bucket, name and subject. No foreign keys: they must
-- survive the raw partitions and any row they name. NULLS NOT DISTINCT lets an upsert
-- add to the row of an event without a subject or owner.
CREATE TABLE analytics_rollup_minute (
    bucket timestamptz NOT NULL,
    name text NOT NULL,
    subject_type text,
    subject_id uuid,
    owner_id uuid,
    count bigint NOT NULL,
    CONSTRAINT analytics_rollup_minute_key
        UNIQUE NULLS NOT DISTINCT (bucket, name, subject_type, subject_id, owner_id)
);
CREATE TABLE analytics_rollup_hour (LIKE analytics_rollup_minute);
ALTER TABLE analytics_rollup_hour ADD CONSTRAINT analytics_rollup_hour_key
    UNIQUE NULLS NOT DISTINCT (bucket, name, subject_type, subject_id, owner_id);
CREATE TABLE analytics_rollup_day (LIKE analytics_rollup_minute);
ALTER TABLE analytics_rollup_day ADD CONSTRAINT analytics_rollup_day_key
    UNIQUE NULLS NOT DISTINCT (bucket, name, subject_type, subject_id, owner_id);

-- Owner insights read a subject's or an owner's series over time.
CREATE INDEX analytics_rollup_minute_subject ON analytics_rollup_minute (subject_id, bucket);
CREATE INDEX analytics_rollup_hour_subject ON analytics_rollup_hour (subject_id, bucket);
CREATE INDEX analytics_rollup_day_subject ON analytics_rollup_day (subject_id, bucket);
CREATE INDEX analytics_rollup_hour_owner ON analytics_rollup_hour (owner_id, bucket);
CREATE INDEX analytics_rollup_day_owner ON analytics_rollup_day (owner_id, bucket);
