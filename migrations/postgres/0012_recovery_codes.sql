-- Recovery codes: each user's current set of single-use codes, each only as a keyed hash
-- (HMAC-SHA256 under a key derived from security.secret_key, bound to the account's objectGUID),
-- never the code. A new set replaces the old one; a code is spent by setting used_at_ms, once.
-- Keep in step with ../sqlite/0012_recovery_codes.sql.
CREATE TABLE recovery_codes (
    object_guid   TEXT   NOT NULL,
    code_hash     BYTEA  NOT NULL,
    created_at_ms BIGINT NOT NULL,
    used_at_ms    BIGINT,
    PRIMARY KEY (object_guid, code_hash)
);

-- A recovery code verified in a reset or unlock flow: a kind of its own, so a code and an
-- authenticator app make two methods, two codes only one.
ALTER TABLE reset_flows ADD COLUMN verified_recovery_code_at_ms BIGINT;
