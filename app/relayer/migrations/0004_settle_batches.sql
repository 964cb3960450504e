-- Settlement batches: a credit source's usage records burned by one `settle` (or
-- `settle_facility`) with this `seq`. A batch is stored, with its records assigned to it
-- (usage_records.settled_seq), before it is sent, so a resend after a crash carries the
-- same seq and the program refuses a second burn. settled_at_ms is set once it is on chain.
-- Records with settled_seq = 0 cost nothing and need no burn.
CREATE TABLE settle_batches (
    source        TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    -- 'credit_account' (burns from its vault) or 'facility' (burns from its escrow)
    kind          TEXT NOT NULL,
    account       TEXT NOT NULL,
    amount        INTEGER NOT NULL,
    -- hex SHA-256 Merkle root over the records' receipt leaves (docs/settlement.md)
    batch_root    TEXT NOT NULL,
    window_end    INTEGER NOT NULL,
    records       INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    signature     TEXT,
    settled_at_ms INTEGER,
    PRIMARY KEY (source, seq)
);
CREATE INDEX settle_batches_pending ON settle_batches (source, seq) WHERE settled_at_ms IS NULL;
CREATE INDEX usage_records_batch ON usage_records (source, settled_seq);
