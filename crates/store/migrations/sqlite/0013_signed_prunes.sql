-- Retention prunes become signed statements of their own.
--
-- A prune row used to be vouched for by the signed checkpoint at its size. But a
-- checkpoint only says "the log once had N events ending in H": anyone able to write the
-- database could add a prune row at an old checkpoint's size, delete the events before it,
-- and verification answered ok. A prune is now signed by the checkpoint key over
-- `steward-prune/1`, pruned_through, head_hash, cutoff and time (see
-- crates/audit/src/checkpoint.rs) and recorded as an `evidence.pruned` event; verification
-- refuses a prune row without a valid signature. Rows from older releases have none and
-- are reported until the log is pruned again past them.
ALTER TABLE evidence_prunes ADD COLUMN key_id TEXT;
ALTER TABLE evidence_prunes ADD COLUMN signature TEXT;
