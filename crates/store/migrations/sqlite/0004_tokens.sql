-- Token service: what each identity registered for client authentication, and the control
-- plane's signing keys. Private keys are stored sealed under the key-encryption key
-- (AES-256-GCM, the kid as associated data); this table alone never reveals them.
ALTER TABLE identities ADD COLUMN credentials TEXT NOT NULL DEFAULT '{}';
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    sealed_private TEXT NOT NULL,
    created_at TEXT NOT NULL,
    -- When a newer key took over signing; NULL for the key that signs now.
    retired_at TEXT,
    -- retired_at + the overlap window: the key verifies (and is published) until then.
    publish_until TEXT
);
