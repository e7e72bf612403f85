-- Admin panel sessions (issue 12): server-side, revocable. The cookie carries a random id; only its SHA-256 is
-- stored, so a database read does not give a usable session. A store key's session ends with the key (deactivated,
-- expired or deleted); an operator's names the store it acts on.
CREATE TABLE admin_sessions (
    session_hash  BYTEA PRIMARY KEY,
    store_id      TEXT NOT NULL,
    credential_id UUID REFERENCES api_credentials (credential_id) ON DELETE CASCADE,
    operator      BOOLEAN NOT NULL,
    scopes        TEXT[] NOT NULL,
    csrf_token    TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ NOT NULL,
    revoked_at    TIMESTAMPTZ,
    CHECK (operator = (credential_id IS NULL))
);
CREATE INDEX admin_sessions_expires ON admin_sessions (expires_at);
