-- Signing-secret rotation with overlap (issue 13): the current secret's version (0: made with the subscription;
-- each rotation's secret is stored at a path of its own, see secrets::webhook_secret_version_path) and the end of
-- the previous version's grace, during which deliveries carry both signatures.
ALTER TABLE webhook_subscriptions
    ADD COLUMN secret_version INT NOT NULL DEFAULT 0 CHECK (secret_version >= 0),
    ADD COLUMN previous_secret_until TIMESTAMPTZ;
