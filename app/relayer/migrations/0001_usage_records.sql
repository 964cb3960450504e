-- One row per served request: what was used, where, and what it cost in credits.
CREATE TABLE usage_records (
    request_id      TEXT PRIMARY KEY,
    created_at_ms   INTEGER NOT NULL,
    key_hash        TEXT NOT NULL,
    account         TEXT NOT NULL,
    provider        TEXT NOT NULL,
    model           TEXT NOT NULL,
    input_tokens    INTEGER NOT NULL,
    output_tokens   INTEGER NOT NULL,
    -- credit base units charged to the account (never more than the request's hold)
    credits_charged INTEGER NOT NULL,
    -- the price applied, credit base units per 1M tokens
    input_per_1m    INTEGER NOT NULL,
    output_per_1m   INTEGER NOT NULL,
    -- set by the settler once the record is in an on-chain batch
    settled_seq     INTEGER
);
CREATE INDEX usage_records_account_time ON usage_records (account, created_at_ms);
CREATE INDEX usage_records_unsettled ON usage_records (account) WHERE settled_seq IS NULL;
