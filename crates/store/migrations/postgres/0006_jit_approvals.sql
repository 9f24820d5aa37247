-- Approvals of just-in-time credentials by a workflow's listed approvers (R8): who
-- approved which requester for which workflow, until when. Kept after they expire.
CREATE TABLE jit_approvals (
    id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    requester TEXT NOT NULL,
    approved_by TEXT NOT NULL,
    approved_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    note TEXT NOT NULL
);
CREATE INDEX jit_approvals_lookup ON jit_approvals (workflow, requester);
