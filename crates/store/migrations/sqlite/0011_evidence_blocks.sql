-- Append-friendly search indexes for the evidence log.
--
-- `(principal, seq)` and `(correlation_id, seq)` put each new event at a random place in
-- the index (10,000 identities, random W3C trace ids), so every commit of a batch of
-- events rewrote about one index page per event: on SQLite's WAL that made the durable
-- append 4-5x slower than the log itself (13,600 vs 65,500 events/s measured). Keyed first
-- by the block of 4,096 sequence numbers an event falls in, new entries land in the
-- current block's small region of the index instead. Searches by principal or
-- correlation id probe block by block (`Store::evidence_search`); the block size is
-- `EVIDENCE_BLOCK` in crates/store/src/evidence.rs and must stay equal to this one.
DROP INDEX evidence_principal;
DROP INDEX evidence_correlation;
CREATE INDEX evidence_principal_block ON evidence ((seq / 4096), principal, seq);
CREATE INDEX evidence_correlation_block ON evidence ((seq / 4096), correlation_id, seq);
