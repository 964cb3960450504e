-- Relayer replicas sharing a Postgres ledger lease slices of each credit source's
-- available balance (leases.rs): one row per (source, replica), renewed in the background.
-- lease_sources serialises the grants of one source (a row lock).
CREATE TABLE lease_sources (
    source TEXT PRIMARY KEY
);
CREATE TABLE balance_leases (
    source        TEXT NOT NULL,
    replica       TEXT NOT NULL,
    amount        BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    PRIMARY KEY (source, replica)
);
