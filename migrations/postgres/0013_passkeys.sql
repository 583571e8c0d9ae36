-- Passkeys (WebAuthn) as a verification method. Keep in step with ../sqlite/0013_passkeys.sql.
-- Times are Unix milliseconds.

-- A user's registered passkeys (at most 5 each). Nothing here is secret: a public key, a
-- credential id and a signature counter.
CREATE TABLE passkeys (
    object_guid      TEXT    NOT NULL,
    -- Our id for the passkey (random, URL-safe), as the API and pages name it.
    id               TEXT    NOT NULL PRIMARY KEY,
    sam_account_name TEXT    NOT NULL,
    -- The user's name for it ("Work phone").
    name             TEXT    NOT NULL,
    credential_id    BYTEA   NOT NULL UNIQUE,
    -- The credential as the WebAuthn library keeps it (JSON): public key, counter, flags.
    credential       TEXT    NOT NULL,
    -- The authenticator's signature counter after the last accepted use; a use must raise it
    -- (unless it is and stays 0: authenticators without a counter), or it is a clone.
    sign_count       BIGINT  NOT NULL,
    created_at_ms    BIGINT  NOT NULL,
    last_used_at_ms  BIGINT
);
CREATE INDEX passkeys_object_guid ON passkeys (object_guid);

-- A WebAuthn ceremony between its options and its answer: a registration keyed by the session's
-- token hash, an authentication keyed by the flow's id hash. Taken (deleted) when answered, so
-- each challenge is used once; it expires with its session or flow.
CREATE TABLE passkey_ceremonies (
    purpose       TEXT    NOT NULL CHECK (purpose IN ('registration', 'authentication')),
    subject       BYTEA   NOT NULL,
    -- The library's ceremony state (JSON): the challenge and the credentials it allows.
    state         TEXT    NOT NULL,
    expires_at_ms BIGINT  NOT NULL,
    PRIMARY KEY (purpose, subject)
);
CREATE INDEX passkey_ceremonies_expires_at_ms ON passkey_ceremonies (expires_at_ms);

-- A reset or unlock flow verified with a passkey.
ALTER TABLE reset_flows ADD COLUMN verified_passkey_at_ms BIGINT;
