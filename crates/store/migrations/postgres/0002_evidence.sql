-- The evidence log (schema steward.evidence/1): one hash-chained row per event.
-- `body` is the event's canonical JSON exactly as hashed; the other columns are copies
-- of its fields for searching. hash = sha256(prev_hash || '\n' || body).
CREATE TABLE evidence (
    seq BIGINT PRIMARY KEY,
    time TEXT NOT NULL,
    kind TEXT NOT NULL,
    plane TEXT,
    principal TEXT,
    action TEXT,
    capability TEXT,
    outcome TEXT,
    correlation_id TEXT,
    body TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX evidence_principal ON evidence (principal, seq);
CREATE INDEX evidence_correlation ON evidence (correlation_id, seq);
CREATE INDEX evidence_time ON evidence (time);
-- Signed (tree size, head hash) statements; see crates/audit/src/checkpoint.rs.
CREATE TABLE evidence_checkpoints (
    tree_size BIGINT PRIMARY KEY,
    head_hash TEXT NOT NULL,
    time TEXT NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL
);
-- The control plane's checkpoint keys (Ed25519, PKCS#8 base64). Encryption at rest with a
-- key-encryption key arrives with the token service's keys.
CREATE TABLE audit_keys (
    id TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    private_pkcs8 TEXT NOT NULL,
    created_at TEXT NOT NULL
);
-- Retention: each row says "events 1..pruned_through were deleted on purpose"; the chain
-- then starts after pruned_through, vouched for by the signed checkpoint at that size.
CREATE TABLE evidence_prunes (
    pruned_through BIGINT PRIMARY KEY,
    head_hash TEXT NOT NULL,
    time TEXT NOT NULL,
    cutoff TEXT NOT NULL
);
CREATE FUNCTION evidence_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Nested, not ANDed: OLD has a `seq` field only for the evidence table.
    IF TG_TABLE_NAME = 'evidence' AND TG_OP = 'DELETE' THEN
        IF OLD.seq <= (SELECT COALESCE(MAX(pruned_through), 0) FROM evidence_prunes) THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;
CREATE TRIGGER evidence_no_change BEFORE UPDATE OR DELETE ON evidence
FOR EACH ROW EXECUTE FUNCTION evidence_append_only();
CREATE TRIGGER checkpoints_no_update BEFORE UPDATE OR DELETE ON evidence_checkpoints
FOR EACH ROW EXECUTE FUNCTION evidence_append_only();
CREATE TRIGGER prunes_no_change BEFORE UPDATE OR DELETE ON evidence_prunes
FOR EACH ROW EXECUTE FUNCTION evidence_append_only();
