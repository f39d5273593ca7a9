-- The keys that sign third-party access tokens and OIDC id_tokens (docs/oauth.md, "Keys and
-- discovery"). A key signs from activated_at until retired_at (NULL: until a rotation), and
-- stays published in /oauth/jwks until every token it signed has expired. A rotation writes
-- the new key with a future activated_at so every node loads and publishes it before any
-- node signs with it.
CREATE TABLE oauth_signing_keys (
    kid          text PRIMARY KEY,             -- the RFC 7638 thumbprint of the public key
    alg          text NOT NULL CHECK (alg IN ('ES256', 'RS256')),
    public_jwk   jsonb NOT NULL,               -- with kid, alg and use=sig, as published
    -- PKCS#8 PEM sealed with AES-256-GCM under a key derived from
    -- HOTSPOT_OAUTH_KEY_ENCRYPTION_SECRET: version byte, 12-byte nonce, ciphertext + tag.
    private_key  bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    activated_at timestamptz NOT NULL,
    retired_at   timestamptz,
    CHECK (retired_at IS NULL OR retired_at >= created_at)
);

-- The key ring reads the keys still published: not retired, or retired recently.
CREATE INDEX oauth_signing_keys_published ON oauth_signing_keys (retired_at DESC NULLS FIRST);
