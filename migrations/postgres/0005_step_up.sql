-- Step-up for registration: once a user has a confirmed method, a new registration session must
-- prove one (or redeem a registration code) before it changes any. Keep in step with
-- ../sqlite/0005_step_up.sql. Times are Unix milliseconds.

-- When this session proved a method (a step-up, a confirmation or a re-confirmation); NULL: not
-- yet, so it may read but not change the user's methods.
ALTER TABLE sessions ADD COLUMN stepped_up_at_ms BIGINT;

-- A password reset ends the user's registration sessions (DELETE by user and kind).
CREATE INDEX sessions_object_guid ON sessions (object_guid, kind);

-- Two more kinds of code: one-time registration codes (subject: the user's objectGUID) and
-- emailed step-up codes (subject: the session's step-up verification).
ALTER TABLE pending_codes DROP CONSTRAINT pending_codes_purpose_check;
ALTER TABLE pending_codes ADD CONSTRAINT pending_codes_purpose_check
    CHECK (purpose IN ('enroll_email', 'reset_email', 'helpdesk_email', 'registration_code',
                       'step_up_email'));
