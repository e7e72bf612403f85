-- API keys and OAuth 2.0 clients of external apps, and the access tokens issued to those clients.

CREATE TABLE api_credentials (
    credential_id  UUID PRIMARY KEY,
    store_id       TEXT NOT NULL,
    name           TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    type           TEXT NOT NULL CHECK (type IN ('API_KEY', 'OAUTH_CLIENT')),
    -- The public part: an API key's prefix, or an OAuth client id. The lookup key of every validation.
    client_id      TEXT NOT NULL,
    -- bcrypt of the secret part; never returned by any endpoint.
    hashed_secret  TEXT NOT NULL,
    -- After a rotation with a grace period, the previous secret keeps working until previous_valid_until.
    previous_hashed_secret TEXT,
    previous_valid_until   TIMESTAMPTZ,
    scopes         TEXT[] NOT NULL CHECK (cardinality(scopes) >= 1),
    is_active      BOOLEAN NOT NULL DEFAULT TRUE,
    -- Coalesced: written at most once per credential per credentials.last_used_precision_secs.
    last_used_at   TIMESTAMPTZ,
    expires_at     TIMESTAMPTZ,
    created_by     TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT api_credentials_client_id UNIQUE (client_id),
    CONSTRAINT api_credentials_store_name UNIQUE (store_id, name)
);

-- Opaque bearer tokens, stored as SHA-256 (they carry 256 random bits, so a fast hash is enough).
CREATE TABLE oauth_access_tokens (
    token_hash    BYTEA PRIMARY KEY CHECK (length(token_hash) = 32),
    credential_id UUID NOT NULL REFERENCES api_credentials (credential_id) ON DELETE CASCADE,
    scopes        TEXT[] NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX oauth_access_tokens_expiry ON oauth_access_tokens (expires_at);
CREATE INDEX oauth_access_tokens_credential ON oauth_access_tokens (credential_id);
