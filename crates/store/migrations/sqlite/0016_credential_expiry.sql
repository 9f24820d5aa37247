-- An admin credential may expire: refused after `expires_at` (RFC 3339, the stored time
-- form); NULL never expires, which posture reports as a finding.
ALTER TABLE admin_credentials ADD COLUMN expires_at TEXT;
