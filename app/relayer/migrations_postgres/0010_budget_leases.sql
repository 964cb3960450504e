-- Relayer replicas lease slices of each key's daily credit budget (leases.rs), as they do
-- balances: one row per (key, replica), for one UTC day, renewed in the background. The
-- grants of one key are serialised by its row in lease_sources ("budget:<key hash>").
CREATE TABLE budget_leases (
    key_hash      TEXT NOT NULL,
    replica       TEXT NOT NULL,
    day           TEXT NOT NULL,
    amount        BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    PRIMARY KEY (key_hash, replica)
);
