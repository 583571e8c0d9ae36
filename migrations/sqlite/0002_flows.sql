-- Sessions, reset flows, emailed codes and throttle counters: short-lived state shared by every
-- instance, so a request may land on any of them. Keep in step with ../postgres/0002_flows.sql.
-- Times are Unix milliseconds; secrets (session tokens, flow ids, codes) are stored only as
-- hashes, so a copy of the database does not let anyone act as a user.

-- A signed-in session. Valid while now < expires_at_ms; rows past it are pruned.
CREATE TABLE sessions (
    -- SHA-256 of the bearer token.
    token_hash       BLOB    NOT NULL PRIMARY KEY,
    kind             TEXT    NOT NULL CHECK (kind IN ('enrollment', 'helpdesk')),
    object_guid      TEXT    NOT NULL,
    sam_account_name TEXT    NOT NULL,
    created_at_ms    INTEGER NOT NULL,
    -- Absolute end; idle timeouts are checked against last_seen_at_ms.
    expires_at_ms    INTEGER NOT NULL,
    last_seen_at_ms  INTEGER NOT NULL,
    -- A TOTP secret shown but not yet confirmed, sealed with security.secret_key.
    pending_totp     BLOB,
    -- Wrong codes typed in this session.
    failures         INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX sessions_expires_at_ms ON sessions (expires_at_ms);

-- A password reset or unlock in progress. Kept a day past its end for the audit and helpdesk
-- views, then pruned.
CREATE TABLE reset_flows (
    -- SHA-256 of the flow id, which is a bearer secret.
    id_hash              BLOB    NOT NULL PRIMARY KEY,
    -- NULL for a decoy: the login matched no user who may reset. A decoy can never succeed.
    object_guid          TEXT,
    -- As typed, lower-cased.
    login                TEXT    NOT NULL,
    sam_account_name     TEXT,
    methods_required     INTEGER NOT NULL,
    verified_totp_at_ms  INTEGER,
    verified_email_at_ms INTEGER,
    failures             INTEGER NOT NULL DEFAULT 0,
    created_at_ms        INTEGER NOT NULL,
    expires_at_ms        INTEGER NOT NULL,
    -- Set once, when the password was written or the account unlocked: a flow is single use.
    finished_at_ms       INTEGER,
    -- The DC that took the flow's write; the rest of the flow stays on it (replication lags).
    dc                   TEXT,
    locale               TEXT    NOT NULL
) STRICT;

CREATE INDEX reset_flows_expires_at_ms ON reset_flows (expires_at_ms);

-- Emailed one-time codes, at most one per purpose and subject: a resend replaces the old code.
CREATE TABLE pending_codes (
    purpose       TEXT    NOT NULL
                  CHECK (purpose IN ('enroll_email', 'reset_email', 'helpdesk_email')),
    -- What the code belongs to: a session's token hash or a flow's id hash.
    subject       BLOB    NOT NULL,
    -- A keyed hash of the code, never the code.
    code_hash     BLOB    NOT NULL,
    -- Where the code was sent.
    address       TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    PRIMARY KEY (purpose, subject)
) STRICT;

-- For pruning.
CREATE INDEX pending_codes_expires_at_ms ON pending_codes (expires_at_ms);

-- One row per throttled event (a failed sign-in, a started flow, …), counted over a sliding
-- window. No primary key: two events under one key in the same millisecond are both counted.
CREATE TABLE throttle_events (
    key   TEXT    NOT NULL,
    at_ms INTEGER NOT NULL
) STRICT;

-- The window count reads one key from a time on.
CREATE INDEX throttle_events_key_at_ms ON throttle_events (key, at_ms);
-- Pruning deletes by time across all keys; under a password-spraying attack the table is large.
CREATE INDEX throttle_events_at_ms ON throttle_events (at_ms);

-- Keys blocked until a time; a later block extends, an earlier one does not shorten.
CREATE TABLE throttle_blocks (
    key      TEXT    NOT NULL PRIMARY KEY,
    until_ms INTEGER NOT NULL
) STRICT;
