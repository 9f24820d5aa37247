-- Usage roll-up (R13, R23, R24): what each identity did, aggregated from the evidence
-- log as it grows, so posture reads one row per identity × capability × action ×
-- outcome × environment × credential instead of every event. `usage_rollup` holds the
-- last evidence seq folded in; both tables are derived and could be rebuilt from the log.
-- The environment a decision was made in (or a token issued for), copied out of the
-- body at append like the other search columns, so the roll-up reads no JSON for it.
-- NULL on events appended before this migration (the roll-up then reads the body).
ALTER TABLE evidence ADD COLUMN environment TEXT;
CREATE TABLE usage_totals (
    principal TEXT NOT NULL,
    kind TEXT NOT NULL,
    capability TEXT NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    environment TEXT NOT NULL,
    credential TEXT NOT NULL,
    n BIGINT NOT NULL,
    first_time TEXT NOT NULL,
    last_time TEXT NOT NULL,
    PRIMARY KEY (principal, kind, capability, action, outcome, environment, credential)
);
-- Rare kinds (exception grants) are read without scanning every identity's usage.
CREATE INDEX usage_totals_kind ON usage_totals (kind);
-- Events per hour, kind and outcome, folded in the same steps: the console's decision
-- timeline and the compliance report's counts without scanning the log. Counts are
-- since the log began (retention does not subtract).
CREATE TABLE evidence_hourly (
    hour TEXT NOT NULL,
    kind TEXT NOT NULL,
    outcome TEXT NOT NULL,
    n BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    PRIMARY KEY (hour, kind, outcome)
);
CREATE TABLE usage_rollup (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    through_seq BIGINT NOT NULL
);
INSERT INTO usage_rollup (id, through_seq) VALUES (1, 0);
