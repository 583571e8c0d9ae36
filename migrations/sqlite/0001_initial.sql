-- Registrations and the audit log. Keep in step with ../postgres/0001_initial.sql: same tables,
-- columns and meaning. Times are Unix milliseconds; object_guid is the AD objectGUID as
-- lowercase hyphenated text. STRICT makes SQLite refuse a value of the wrong type, as
-- PostgreSQL would.

-- One row per verification method of a user. Keyed by objectGUID because a DN changes on rename
-- or move and a sAMAccountName can be reused; sam_account_name is kept for reports only.
CREATE TABLE enrollment_methods (
    object_guid      TEXT    NOT NULL,
    kind             TEXT    NOT NULL CHECK (kind IN ('totp', 'email')),
    sam_account_name TEXT    NOT NULL,
    -- email: the address.
    address          TEXT,
    -- totp: the shared secret sealed with security.secret_key; never stored in clear.
    secret_sealed    BLOB,
    -- totp: the last accepted RFC 6238 time step; steps at or below it are replays.
    last_step        INTEGER,
    -- NULL while the user has not yet proved control of the method.
    confirmed_at_ms  INTEGER,
    created_at_ms    INTEGER NOT NULL,
    updated_at_ms    INTEGER NOT NULL,
    PRIMARY KEY (object_guid, kind)
) STRICT;

-- Never holds a password, a code or a secret.
CREATE TABLE audit_events (
    -- AUTOINCREMENT so an id is never reused, even after the newest rows are pruned.
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms            INTEGER NOT NULL,
    event            TEXT    NOT NULL,
    outcome          TEXT    NOT NULL,
    object_guid      TEXT,
    sam_account_name TEXT,
    -- A helpdesk operator's sAMAccountName when it was not the user who acted.
    actor            TEXT,
    client_ip        TEXT,
    method           TEXT,
    reason           TEXT
) STRICT;

CREATE INDEX audit_events_at_ms ON audit_events (at_ms, id);
CREATE INDEX audit_events_object_guid ON audit_events (object_guid);
