-- Static client secrets of legacy-key identities (R4): at most one per identity, stored
-- only as its SHA-256, with its creation time for the plane's maximum credential age.
CREATE TABLE client_secrets (
    spiffe_id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    created_at TEXT NOT NULL
);
