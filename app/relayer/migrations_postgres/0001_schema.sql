-- The ledger's schema on Postgres: the same tables, columns and indexes as SQLite's
-- migrations 0001 to 0006 (migrations/), with BIGINT where SQLite's INTEGER is 64-bit.
-- A later migration goes into both directories with the same number (0007 on).

CREATE TABLE usage_records (
    request_id             TEXT PRIMARY KEY,
    created_at_ms          BIGINT NOT NULL,
    key_hash               TEXT NOT NULL,
    account                TEXT NOT NULL,
    provider               TEXT NOT NULL,
    model                  TEXT NOT NULL,
    input_tokens           BIGINT NOT NULL,
    output_tokens          BIGINT NOT NULL,
    credits_charged        BIGINT NOT NULL,
    input_per_1m           BIGINT NOT NULL,
    output_per_1m          BIGINT NOT NULL,
    settled_seq            BIGINT,
    source                 TEXT,
    provider_input_per_1m  BIGINT,
    provider_output_per_1m BIGINT,
    provider_cost          BIGINT,
    day                    TEXT
);
CREATE INDEX usage_records_account_time ON usage_records (account, created_at_ms);
CREATE INDEX usage_records_unsettled ON usage_records (source) WHERE settled_seq IS NULL;
CREATE INDEX usage_records_key_time ON usage_records (key_hash, created_at_ms);
CREATE INDEX usage_records_batch ON usage_records (source, settled_seq);
CREATE INDEX usage_records_account_day ON usage_records (account, day);

CREATE TABLE api_keys (
    id                  TEXT PRIMARY KEY,
    key_hash            TEXT NOT NULL UNIQUE,
    owner               TEXT NOT NULL,
    account             TEXT NOT NULL,
    created_at_ms       BIGINT NOT NULL,
    revoked_at_ms       BIGINT,
    credits_per_day     BIGINT,
    requests_per_minute BIGINT
);
CREATE INDEX api_keys_owner ON api_keys (owner);

CREATE TABLE settle_batches (
    source        TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    account       TEXT NOT NULL,
    amount        BIGINT NOT NULL,
    batch_root    TEXT NOT NULL,
    window_end    BIGINT NOT NULL,
    records       BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    signature     TEXT,
    settled_at_ms BIGINT,
    PRIMARY KEY (source, seq)
);
CREATE INDEX settle_batches_pending ON settle_batches (source, seq) WHERE settled_at_ms IS NULL;

CREATE TABLE alerts (
    id             TEXT PRIMARY KEY,
    account        TEXT NOT NULL,
    url            TEXT NOT NULL,
    below          BIGINT NOT NULL,
    secret         TEXT NOT NULL,
    created_at_ms  BIGINT NOT NULL
);
CREATE INDEX alerts_account ON alerts (account);
