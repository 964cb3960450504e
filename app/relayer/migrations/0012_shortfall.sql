-- Credits a provider billed beyond what the request could be charged (docs/relayer.md,
-- "The bill's bound"): a loss to the marketplace, kept with the request that caused it.
ALTER TABLE usage_records ADD COLUMN shortfall_credits INTEGER NOT NULL DEFAULT 0;
