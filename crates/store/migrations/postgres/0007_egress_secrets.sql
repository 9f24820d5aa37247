-- Static credentials of third-party APIs (an AI provider's key, a legacy SaaS key) that
-- the gateway injects in egress mode, so workloads never hold them (R17). Sealed under the
-- key-encryption key (AES-256-GCM, the id as associated data); never stored in clear.
CREATE TABLE egress_secrets (
    id TEXT PRIMARY KEY,
    sealed TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
