-- API keys issued to wallets (stored hashed; the key itself is shown once).
CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY,
    key_hash       TEXT NOT NULL UNIQUE,
    owner          TEXT NOT NULL,
    account        TEXT NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    revoked_at_ms  INTEGER
);
CREATE INDEX api_keys_owner ON api_keys (owner);
