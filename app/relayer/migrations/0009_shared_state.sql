-- State that decides who may spend, shared by relayer replicas on one database
-- (docs/relayer.md, "What replicas share").
-- Sign-in challenges: issued by one replica, answered to any; single use (DELETE RETURNING).
CREATE TABLE key_challenges (
    challenge    TEXT PRIMARY KEY,
    owner        TEXT NOT NULL,
    issued_at_ms BIGINT NOT NULL
);
-- A counter bumped in the same transaction as every change to a shared table (api_keys):
-- the row lock orders the changes, so a replica that reads version v has every change up to
-- v committed and reloads; it polls the version every 200 ms.
CREATE TABLE shared_versions (
    name    TEXT PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO shared_versions (name, version) VALUES ('api_keys', 0);
-- Requests-per-minute limits across replicas: the generic cell rate algorithm's theoretical
-- arrival time per key, advanced by one conditional UPDATE per admitted request.
CREATE TABLE rate_limits (
    key_hash TEXT PRIMARY KEY,
    tat_ms   BIGINT NOT NULL
);
-- Low-balance alerts fire once per crossing whichever replica checks: the crossing is
-- claimed by a conditional UPDATE of fired_at_ms, cleared when the balance is back above.
ALTER TABLE alerts ADD COLUMN fired_at_ms BIGINT;
