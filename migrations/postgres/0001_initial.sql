-- Registrations and the audit log. Keep in step with ../sqlite/0001_initial.sql: same tables,
-- columns and meaning. Times are Unix milliseconds; object_guid is the AD objectGUID as
-- lowercase hyphenated text.

-- One row per verification method of a user. Keyed by objectGUID because a DN changes on rename
-- or move and a sAMAccountName can be reused; sam_account_name is kept for reports only.
CREATE TABLE enrollment_methods (
    object_guid      TEXT   NOT NULL,
    kind             TEXT   NOT NULL CHECK (kind IN ('totp', 'email')),
    sam_account_name TEXT   NOT NULL,
    -- email: the address.
    address          TEXT,
    -- totp: the shared secret sealed with security.secret_key; never stored in clear.
    secret_sealed    BYTEA,
    -- totp: the last accepted RFC 6238 time step; steps at or below it are replays.
    last_step        BIGINT,
    -- NULL while the user has not yet proved control of the method.
    confirmed_at_ms  BIGINT,
    created_at_ms    BIGINT NOT NULL,
    updated_at_ms    BIGINT NOT NULL,
    PRIMARY KEY (object_guid, kind)
);

-- Never holds a password, a code or a secret.
CREATE TABLE audit_events (
    -- ALWAYS so an id cannot be written by hand; identities are never reused.
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms            BIGINT NOT NULL,
    event            TEXT   NOT NULL,
    outcome          TEXT   NOT NULL,
    object_guid      TEXT,
    sam_account_name TEXT,
    -- A helpdesk operator's sAMAccountName when it was not the user who acted.
    actor            TEXT,
    client_ip        TEXT,
    method           TEXT,
    reason           TEXT
);

CREATE INDEX audit_events_at_ms ON audit_events (at_ms, id);
CREATE INDEX audit_events_object_guid ON audit_events (object_guid);
