-- Mails the batch commands (`remind`, `notify-expiry`) sent, so each goes out only as often as
-- configured. Keep in step with ../postgres/0003_notices.sql. Times are Unix milliseconds.
CREATE TABLE notices (
    object_guid TEXT    NOT NULL,
    -- registration_reminder | password_expiry
    kind        TEXT    NOT NULL,
    -- What tells two notices of one kind apart: for password_expiry the threshold in days and the
    -- pwdLastSet of the password it warned about; empty for registration_reminder.
    key         TEXT    NOT NULL,
    sent_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (object_guid, kind, key)
) STRICT;
