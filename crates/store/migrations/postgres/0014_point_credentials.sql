-- An enforcement point belongs to the admin credential that first reported it.
--
-- Any ingestor credential could report for any point id, so one gateway's credential
-- could acknowledge revocations for another point that was down, and `steward revoke
-- verify` said "verified". Reports for a point bound to another live credential are now
-- refused (and recorded); a point whose credential was revoked is taken over by the next
-- credential that reports it. Points registered before this release are bound by their
-- next report.
ALTER TABLE enforcement_points ADD COLUMN credential_id TEXT;
