-- The gateway's books in PostgreSQL: the same as the embedded ledger keeps
-- in sled. Applied once, in order, by the first gateway process (or command)
-- that finds it missing.

-- Enrolled devices, and the highest seq seen from each (a new key starts
-- the sequence again). A decision locks its device's row: two workers
-- deciding for one device take turns, so neither overspends its day.
CREATE TABLE devices (
    device_id  TEXT PRIMARY KEY,
    public_key BYTEA NOT NULL CHECK (length(public_key) = 32),
    last_seq   BIGINT
);

-- What each device spent a day, per currency, in minor units.
CREATE TABLE daily_spend (
    device_id TEXT    NOT NULL REFERENCES devices ON DELETE CASCADE,
    day       INTEGER NOT NULL,
    currency  TEXT    NOT NULL,
    spent     BIGINT  NOT NULL,
    PRIMARY KEY (device_id, day, currency)
);

-- Every answer given, approval or decline, under its request: a second
-- delivery gets it again, byte for byte. Kept until `keep_until` (unix ms).
CREATE TABLE answers (
    device_id      TEXT   NOT NULL,
    request_id     UUID   NOT NULL,
    payload_sha256 TEXT   NOT NULL,
    response       TEXT   NOT NULL,
    keep_until     BIGINT NOT NULL,
    PRIMARY KEY (device_id, request_id)
);
CREATE INDEX answers_by_keep_until ON answers (keep_until);

-- Approved payments, in the order they were charged.
CREATE TABLE ledger (
    id         BIGSERIAL PRIMARY KEY,
    device_id  TEXT  NOT NULL,
    request_id UUID  NOT NULL,
    entry      JSONB NOT NULL,
    UNIQUE (device_id, request_id)
);

-- The last status session handed out, one for every worker: each new
-- connection's session is larger than all before it.
CREATE TABLE status_session (
    only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    last     BIGINT  NOT NULL
);
INSERT INTO status_session (last) VALUES (0);
