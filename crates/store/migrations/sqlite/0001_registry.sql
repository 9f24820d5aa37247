-- The identity registry, governance configuration versions and the admin audit trail.
-- Timestamps are RFC 3339 UTC text; structured values are JSON text; booleans are 0/1.
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE config_versions (
    version BIGINT PRIMARY KEY,
    applied_at TEXT NOT NULL,
    applied_by TEXT NOT NULL,
    digest TEXT NOT NULL,
    summary TEXT NOT NULL
);
CREATE TABLE root_settings (id BIGINT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE planes (
    id TEXT PRIMARY KEY, parent TEXT, name TEXT NOT NULL, description TEXT NOT NULL, settings TEXT NOT NULL
);
CREATE TABLE owners (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, kind TEXT NOT NULL, removed_at TEXT
);
CREATE TABLE identities (
    spiffe_id TEXT PRIMARY KEY,
    plane TEXT NOT NULL,
    owner TEXT NOT NULL,
    environment TEXT NOT NULL,
    kind TEXT NOT NULL,
    classification TEXT NOT NULL,
    description TEXT NOT NULL,
    labels TEXT NOT NULL,
    state TEXT NOT NULL,
    intended TEXT NOT NULL,
    managed BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX identities_plane ON identities (plane);
CREATE INDEX identities_owner ON identities (owner);
CREATE TABLE capabilities (id TEXT PRIMARY KEY, plane TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE issuers (id TEXT PRIMARY KEY, plane TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE policies (path TEXT PRIMARY KEY, plane TEXT NOT NULL, text TEXT NOT NULL);
CREATE TABLE admin_credentials (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    plane TEXT,
    token_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE admin_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    before TEXT,
    after TEXT
);
CREATE TRIGGER admin_changes_no_update BEFORE UPDATE ON admin_changes
BEGIN SELECT RAISE(ABORT, 'admin_changes is append-only'); END;
CREATE TRIGGER admin_changes_no_delete BEFORE DELETE ON admin_changes
BEGIN SELECT RAISE(ABORT, 'admin_changes is append-only'); END;
