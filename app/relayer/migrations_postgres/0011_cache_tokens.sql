-- Prompt tokens read from and written to the provider's prompt cache, charged at their own
-- prices (docs/providers.md); input_tokens keeps counting every prompt token.
ALTER TABLE usage_records ADD COLUMN cached_input_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_records ADD COLUMN cache_write_tokens BIGINT NOT NULL DEFAULT 0;
