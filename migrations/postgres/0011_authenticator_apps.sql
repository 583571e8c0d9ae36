-- More than one authenticator app per user (up to 5, a limit the service keeps), each named and
-- each with its own replay protection. Keep in step with ../sqlite/0011_authenticator_apps.sql.
--
-- A method is now keyed by its own id: random and URL-safe, as it appears in
-- DELETE /api/v1/enrollment/totp/{id}. Rows from before get one here (32 hex digits; new ones are
-- 16 random bytes in base64url); their name stays NULL and is shown as "Authenticator app".
-- A user still has at most one email address (the unique index below); the one pending app lives
-- in the registration session (sessions.pending_totp), as before.
ALTER TABLE enrollment_methods ADD COLUMN id TEXT;
UPDATE enrollment_methods SET id = replace(gen_random_uuid()::text, '-', '');
ALTER TABLE enrollment_methods ALTER COLUMN id SET NOT NULL;

-- totp: what the user called the app ("Work phone"); NULL for apps added before names.
ALTER TABLE enrollment_methods ADD COLUMN name TEXT;
-- totp: when a code of this app last verified the user; NULL until then.
ALTER TABLE enrollment_methods ADD COLUMN last_used_at_ms BIGINT;

ALTER TABLE enrollment_methods DROP CONSTRAINT enrollment_methods_pkey;
ALTER TABLE enrollment_methods ADD PRIMARY KEY (object_guid, id);

CREATE UNIQUE INDEX enrollment_methods_one_email ON enrollment_methods (object_guid)
    WHERE kind = 'email';

-- The name of the app a registration session is adding, until its code confirms it.
ALTER TABLE sessions ADD COLUMN pending_totp_name TEXT;
