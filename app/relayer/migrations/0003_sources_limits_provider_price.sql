-- Which credit source a request spends from (the credit account's vault, or a facility's
-- escrow), what the provider itself charges for it, and per-key limits.
ALTER TABLE usage_records ADD COLUMN source TEXT;
UPDATE usage_records SET source = account;
-- the provider's own price (credit base units per 1M tokens) and the cost at it, rounded up;
-- before this migration the caller's price was the only one known
ALTER TABLE usage_records ADD COLUMN provider_input_per_1m INTEGER;
ALTER TABLE usage_records ADD COLUMN provider_output_per_1m INTEGER;
ALTER TABLE usage_records ADD COLUMN provider_cost INTEGER;
UPDATE usage_records SET provider_input_per_1m = input_per_1m, provider_output_per_1m = output_per_1m,
    provider_cost = credits_charged;
DROP INDEX usage_records_unsettled;
CREATE INDEX usage_records_unsettled ON usage_records (source) WHERE settled_seq IS NULL;
CREATE INDEX usage_records_key_time ON usage_records (key_hash, created_at_ms);

ALTER TABLE api_keys ADD COLUMN credits_per_day INTEGER;
ALTER TABLE api_keys ADD COLUMN requests_per_minute INTEGER;
