-- The correlation index holds only events that carry a correlation id: decisions asked
-- through AuthZEN without one no longer add an entry nobody can search for. A search
-- `correlation_id = $1` implies `IS NOT NULL`, so it still uses the index. (On SQLite
-- this migration also rebuilds the table around its rowid; PostgreSQL's `BIGINT PRIMARY
-- KEY` needs no such change.)
DROP INDEX evidence_correlation_block;
CREATE INDEX evidence_correlation_block ON evidence ((seq / 4096), correlation_id, seq)
    WHERE correlation_id IS NOT NULL;
