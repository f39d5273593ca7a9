-- Authorization codes of the OAuth authorization code flow (docs/oauth.md, "Flows").
-- A code lives 60 s and is spent once; only its SHA-256 is kept, so a database reader
-- cannot redeem one. It is bound to everything the token request must repeat or prove:
-- the app, the redirect URI, the user, the scopes, the PKCE challenge and the OIDC nonce.
CREATE TABLE oauth_codes (
    code_hash       bytea PRIMARY KEY,
    app_id          uuid NOT NULL REFERENCES oauth_apps (id) ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    redirect_uri    text NOT NULL,
    scopes          text[] NOT NULL,
    code_challenge  text,
    -- Only S256 is accepted; the column records what was asked so the rule is checkable.
    code_challenge_method text CHECK (code_challenge_method IN ('S256')),
    nonce           text,
    auth_time       timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz,
    -- The token family the first use opened: a second use of the code revokes it
    -- (RFC 6749 section 4.1.2).
    session_id      uuid REFERENCES sessions (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
-- Spent and expired codes are deleted by the next code written (see storage/oauth_codes.py).
CREATE INDEX oauth_codes_expiry ON oauth_codes (expires_at);
