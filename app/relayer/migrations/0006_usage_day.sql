-- The UTC day of each record, stored (YYYY-MM-DD) so that reports group by it the same way
-- on SQLite and Postgres (which share no date function).
ALTER TABLE usage_records ADD COLUMN day TEXT;
UPDATE usage_records SET day = date(created_at_ms / 1000, 'unixepoch');
CREATE INDEX usage_records_account_day ON usage_records (account, day);
