-- Access review campaigns (R25): which identities an owner must attest, with the
-- effective permissions they had when the campaign started, and each attestation
-- (keep / reduce / revoke). Items are kept after the campaign closes: they are the
-- record of who reviewed what, when.
CREATE TABLE review_campaigns (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    plane TEXT,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    due_at TEXT NOT NULL
);
CREATE TABLE review_items (
    campaign_id TEXT NOT NULL,
    spiffe_id TEXT NOT NULL,
    plane TEXT NOT NULL,
    owner TEXT NOT NULL,
    permissions TEXT NOT NULL,
    decision TEXT,
    reduce TEXT,
    note TEXT,
    decided_by TEXT,
    decided_at TEXT,
    PRIMARY KEY (campaign_id, spiffe_id)
);
CREATE INDEX review_items_identity ON review_items (spiffe_id, decided_at);
