-- The source's usage_chain after each batch (hex), computed when the batch is cut: the
-- settler compares it with the chain when it finds a batch already landed, so a batch that
-- landed with other content is caught, not silently marked.
ALTER TABLE settle_batches ADD COLUMN usage_chain TEXT;
