-- Policy versions: every distinct policy bundle (Cedar files, request-context attributes,
-- exceptions) published by an apply or a rollback, so versions can be listed, diffed and
-- rolled back, and every decision names the version it was made under. Append-only.
CREATE TABLE policy_versions (
    version BIGINT PRIMARY KEY,
    config_version BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    digest TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TRIGGER policy_versions_no_change BEFORE UPDATE OR DELETE ON policy_versions
FOR EACH ROW EXECUTE FUNCTION evidence_append_only();
