-- Central revocations (R18), in epoch order: gapless numbers allocated under the write
-- lock, so "a point applied epoch N" means it applied every revocation up to N.
-- Append-only: a revocation is evidence, and points resume from their last epoch.
CREATE TABLE revocations (
    epoch BIGINT PRIMARY KEY,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    revoked_at BIGINT NOT NULL,
    until_unix BIGINT,
    planes TEXT NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX revocations_target ON revocations (kind, target);
CREATE TRIGGER revocations_no_update BEFORE UPDATE ON revocations
BEGIN SELECT RAISE(ABORT, 'revocations is append-only'); END;
CREATE TRIGGER revocations_no_delete BEFORE DELETE ON revocations
BEGIN SELECT RAISE(ABORT, 'revocations is append-only'); END;

-- Enforcement points as they last reported themselves (R19): which bundle and revocation
-- epoch they run, when they were last heard from, and anything suspicious they said.
CREATE TABLE enforcement_points (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    environment TEXT,
    credential TEXT NOT NULL,
    bundle_version BIGINT NOT NULL,
    epoch BIGINT NOT NULL,
    registered_at TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    last_seen_unix BIGINT NOT NULL,
    flagged TEXT
);
