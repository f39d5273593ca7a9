-- The device authorization grant (RFC 8628; docs/oauth.md, "Device flow"). A device asks
-- for a pair of codes: the device_code, which it polls the token endpoint with (only its
-- SHA-256 is kept, so a database reader cannot redeem one), and the user_code, which the
-- person types on /oauth/device. The person approves or denies; one token request then
-- spends the row and opens the app's token family for that person.
CREATE TABLE oauth_device_codes (
    device_code_hash bytea PRIMARY KEY,
    -- Normalized: 8 characters of the look-alike-free alphabet, without the dash. Kept in
    -- clear because it must be found by what the person types; alone it grants nothing.
    user_code       text NOT NULL,
    app_id          uuid NOT NULL REFERENCES oauth_apps (id) ON DELETE CASCADE,
    -- Requested scopes; on approval, what the person left ticked.
    scopes          text[] NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'approved', 'denied')),
    -- Who approved or denied, and when they signed in (the id_token's auth_time).
    user_id         uuid REFERENCES users (id) ON DELETE CASCADE,
    auth_time       timestamptz,
    -- The polling interval the device must keep; each slow_down adds 5 s (RFC 8628 3.5).
    interval_s      integer NOT NULL,
    last_polled_at  timestamptz,
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz,
    session_id      uuid REFERENCES sessions (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'pending') = (user_id IS NULL))
);
-- One row per user code while it is kept; a collision at creation draws another code.
CREATE UNIQUE INDEX oauth_device_codes_user_code ON oauth_device_codes (user_code);
-- Expired rows are deleted by the next device authorization (storage/oauth_device_codes.py).
CREATE INDEX oauth_device_codes_expiry ON oauth_device_codes (expires_at);
