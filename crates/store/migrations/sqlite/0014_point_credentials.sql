-- An enforcement point belongs to the admin credential that first reported it.
--
-- Any ingestor credential could report for any point id, so one gateway's credential
-- could acknowledge revocations for another point that was down, and `steward revoke
-- verify` said "verified". Reports for a point bound to another live credential are now
-- refused (and recorded); a point whose credential was revoked is taken over by the next
-- credential that reports it.
ALTER TABLE enforcement_points ADD COLUMN credential_id TEXT;
-- Points registered before this release are bound to the credential they reported with:
-- it was recorded by name, so where exactly one live credential has that name. Left
-- unbound only where the name is ambiguous (the next report binds them).
UPDATE enforcement_points SET credential_id = (
    SELECT c.id FROM admin_credentials c
    WHERE c.name = enforcement_points.credential AND c.revoked_at IS NULL
)
WHERE (
    SELECT COUNT(*) FROM admin_credentials c
    WHERE c.name = enforcement_points.credential AND c.revoked_at IS NULL
) = 1;
