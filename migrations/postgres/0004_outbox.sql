-- Mails waiting to be sent (codes and notifications), so no answer waits on the mail server.
-- Keep in step with ../sqlite/0004_outbox.sql. Times are Unix milliseconds.
CREATE TABLE outbox (
    -- Random; the body is sealed to it.
    id                 TEXT    PRIMARY KEY,
    -- The mail, whom it is about and whether it is a decoy, padded to a multiple of 1 KiB and
    -- sealed with security.secret_key: codes never rest in clear, and a decoy's row looks alike.
    body_sealed        BYTEA   NOT NULL,
    created_at_ms      BIGINT  NOT NULL,
    -- After this the mail is dropped unsent: a code's expiry, or a notice's last try.
    send_by_ms         BIGINT  NOT NULL,
    next_attempt_at_ms BIGINT  NOT NULL,
    attempts           BIGINT  NOT NULL DEFAULT 0,
    -- An instance working on the row holds it until then; NULL when nobody does.
    claimed_until_ms   BIGINT
);

CREATE INDEX outbox_due ON outbox (next_attempt_at_ms);
