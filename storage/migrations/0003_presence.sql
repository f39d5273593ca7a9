-- When each user was last connected, kept durably beside the live presence in Redis.

ALTER TABLE users ADD COLUMN last_seen_at timestamptz;
