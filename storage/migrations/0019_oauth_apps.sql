-- OAuth 2.0 / OpenID Connect apps (issue 11): apps users register, the consent each user
-- gave an app, and the app's token families, which are ordinary sessions so that refresh
-- rotation, the revocation list and socket disconnection serve apps exactly as they serve
-- first-party logins.

CREATE TABLE oauth_apps (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Public identifier an app sends in every flow; random, never the row id, so ids of
    -- rows cannot be guessed from it.
    client_id         text NOT NULL UNIQUE,
    owner_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name              text NOT NULL,
    website           text,
    logo_media_id     uuid REFERENCES media (id) ON DELETE SET NULL,
    -- Compared as exact strings at authorization time: no patterns, no prefixes.
    redirect_uris     text[] NOT NULL,
    client_type       text NOT NULL CHECK (client_type IN ('confidential', 'public')),
    allowed_scopes    text[] NOT NULL,
    -- HMAC-SHA256 of the secret; public clients (native, browser) have none and use PKCE.
    secret_hash       bytea,
    secret_rotated_at timestamptz,
    suspended_at      timestamptz,
    suspended_reason  text,
    deleted_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (client_type = 'confidential' OR secret_hash IS NULL)
);
CREATE INDEX oauth_apps_owner ON oauth_apps (owner_id, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;

-- The scopes a user agreed to give an app, remembered so the consent page is not shown
-- again for the same or fewer scopes; revoking it (or deleting the app) sets revoked_at.
CREATE TABLE oauth_consents (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    app_id     uuid NOT NULL REFERENCES oauth_apps (id) ON DELETE CASCADE,
    scopes     text[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    PRIMARY KEY (user_id, app_id)
);
CREATE INDEX oauth_consents_user_live ON oauth_consents (user_id, created_at DESC, app_id DESC)
    WHERE revoked_at IS NULL;
CREATE INDEX oauth_consents_app_live ON oauth_consents (app_id) WHERE revoked_at IS NULL;

-- A session with a client_id is one app's token family for one user; NULL is first-party.
ALTER TABLE sessions ADD COLUMN client_id uuid REFERENCES oauth_apps (id);
CREATE INDEX sessions_client_live ON sessions (client_id, user_id)
    WHERE revoked_at IS NULL AND client_id IS NOT NULL;
