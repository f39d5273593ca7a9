-- Changing the account email: the new address waits in pending_email until the link mailed
-- to it is confirmed; the account keeps (and logs in and resets with) its old address until
-- then. The link is a user_tokens row of purpose 'email_change' carrying the new address.
ALTER TABLE users
    ADD COLUMN pending_email            text,
    ADD COLUMN pending_email_expires_at timestamptz;

ALTER TABLE user_tokens DROP CONSTRAINT user_tokens_purpose_check;
ALTER TABLE user_tokens ADD CONSTRAINT user_tokens_purpose_check
    CHECK (purpose IN ('email_verify', 'password_reset', 'email_change'));
