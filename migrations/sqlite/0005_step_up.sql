-- Step-up for registration: once a user has a confirmed method, a new registration session must
-- prove one (or redeem a registration code) before it changes any. Keep in step with
-- ../postgres/0005_step_up.sql. Times are Unix milliseconds.

-- When this session proved a method (a step-up, a confirmation or a re-confirmation); NULL: not
-- yet, so it may read but not change the user's methods.
ALTER TABLE sessions ADD COLUMN stepped_up_at_ms INTEGER;

-- A password reset ends the user's registration sessions (DELETE by user and kind).
CREATE INDEX sessions_object_guid ON sessions (object_guid, kind);

-- Two more kinds of code: one-time registration codes (subject: the user's objectGUID) and
-- emailed step-up codes (subject: the session's step-up verification). SQLite cannot change a
-- CHECK in place, so the table is rebuilt with the same columns, rows and index.
CREATE TABLE pending_codes_new (
    purpose       TEXT    NOT NULL
                  CHECK (purpose IN ('enroll_email', 'reset_email', 'helpdesk_email',
                                     'registration_code', 'step_up_email')),
    -- What the code belongs to: a session's token hash, a flow's id hash or a user's objectGUID.
    subject       BLOB    NOT NULL,
    -- A keyed hash of the code, never the code.
    code_hash     BLOB    NOT NULL,
    -- Where the code was sent; empty for a registration code (it is handed over, not mailed).
    address       TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    PRIMARY KEY (purpose, subject)
) STRICT;
INSERT INTO pending_codes_new (purpose, subject, code_hash, address, created_at_ms, expires_at_ms)
    SELECT purpose, subject, code_hash, address, created_at_ms, expires_at_ms FROM pending_codes;
DROP TABLE pending_codes;
ALTER TABLE pending_codes_new RENAME TO pending_codes;
CREATE INDEX pending_codes_expires_at_ms ON pending_codes (expires_at_ms);
