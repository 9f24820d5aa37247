-- Each exception's expiry is recorded once: the row is inserted in the transaction that
-- chains its `exception.expired` event, and a second replica's attempt inserts nothing.
CREATE TABLE exception_expiries (
    id TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (id, expires_at)
);
