-- More than one authenticator app per user (up to 5, a limit the service keeps), each named and
-- each with its own replay protection. Keep in step with ../postgres/0011_authenticator_apps.sql.
--
-- A method is now keyed by its own id: random and URL-safe, as it appears in
-- DELETE /api/v1/enrollment/totp/{id}. Rows from before get one here (32 hex digits; new ones are
-- 16 random bytes in base64url); their name stays NULL and is shown as "Authenticator app".
-- A user still has at most one email address (the unique index below); the one pending app lives
-- in the registration session (sessions.pending_totp), as before.
--
-- SQLite cannot change a primary key or a CHECK in place: the table is rebuilt and its rows kept.
CREATE TABLE enrollment_methods_0011 (
    object_guid      TEXT    NOT NULL,
    id               TEXT    NOT NULL,
    kind             TEXT    NOT NULL CHECK (kind IN ('totp', 'email')),
    sam_account_name TEXT    NOT NULL,
    -- totp: what the user called the app ("Work phone"); NULL for apps added before names.
    name             TEXT,
    -- email: the address.
    address          TEXT,
    -- totp: the shared secret sealed with security.secret_key; never stored in clear.
    secret_sealed    BLOB,
    -- totp: the last accepted RFC 6238 time step of this app; steps at or below it are replays.
    last_step        INTEGER,
    -- NULL while the user has not yet proved control of the method.
    confirmed_at_ms  INTEGER,
    created_at_ms    INTEGER NOT NULL,
    updated_at_ms    INTEGER NOT NULL,
    -- totp: when a code of this app last verified the user; NULL until then.
    last_used_at_ms  INTEGER,
    PRIMARY KEY (object_guid, id)
) STRICT;

INSERT INTO enrollment_methods_0011 (object_guid, id, kind, sam_account_name, name, address,
    secret_sealed, last_step, confirmed_at_ms, created_at_ms, updated_at_ms, last_used_at_ms)
SELECT object_guid, lower(hex(randomblob(16))), kind, sam_account_name, NULL, address,
    secret_sealed, last_step, confirmed_at_ms, created_at_ms, updated_at_ms, NULL
FROM enrollment_methods;

DROP TABLE enrollment_methods;
ALTER TABLE enrollment_methods_0011 RENAME TO enrollment_methods;

CREATE UNIQUE INDEX enrollment_methods_one_email ON enrollment_methods (object_guid)
    WHERE kind = 'email';

-- The name of the app a registration session is adding, until its code confirms it.
ALTER TABLE sessions ADD COLUMN pending_totp_name TEXT;
