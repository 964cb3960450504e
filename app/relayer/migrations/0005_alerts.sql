-- Low-balance webhooks a credit account's key registered. The secret signs every delivery
-- (HMAC-SHA256), so it is kept as is; it is shown to the caller once, at registration.
CREATE TABLE alerts (
    id             TEXT PRIMARY KEY,
    account        TEXT NOT NULL,
    url            TEXT NOT NULL,
    below          INTEGER NOT NULL,
    secret         TEXT NOT NULL,
    created_at_ms  INTEGER NOT NULL
);
CREATE INDEX alerts_account ON alerts (account);
