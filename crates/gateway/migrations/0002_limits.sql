-- The deployment's limit per device and day (`voicepay gateway limits`):
-- kept with the books so that every worker judges by the same one, and a
-- change reaches all of them at their next decision. NULL: none.
CREATE TABLE limits (
    only_row       BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    daily_minor    BIGINT,
    daily_currency TEXT,
    CHECK ((daily_minor IS NULL) = (daily_currency IS NULL)),
    CHECK (daily_minor IS NULL OR daily_minor >= 0)
);
INSERT INTO limits DEFAULT VALUES;
