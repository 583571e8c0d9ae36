-- Webhook deliveries waiting to be made (hooks.after_*), and how far the syslog forwarder has
-- read the audit log. Keep in step with ../postgres/0009_hooks_and_forwarding.sql. Times are Unix
-- milliseconds.

-- One row per webhook call still to make. The body is the event as sent: it never holds a
-- password (a hook that is given one gets it in memory only, never through this table).
CREATE TABLE hook_outbox (
    -- Random.
    id                 TEXT    PRIMARY KEY,
    -- after_reset, after_unlock, after_change or after_registration_change: the URL is read
    -- from the configuration at each attempt, so a hook removed from it is not called.
    hook               TEXT    NOT NULL,
    body               TEXT    NOT NULL,
    created_at_ms      INTEGER NOT NULL,
    -- After this the call is dropped unmade (hooks.retry_for), with a log line and an audit row.
    give_up_at_ms      INTEGER NOT NULL,
    next_attempt_at_ms INTEGER NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    -- An instance working on the row holds it until then; NULL when nobody does.
    claimed_until_ms   INTEGER
) STRICT;

CREATE INDEX hook_outbox_due ON hook_outbox (next_attempt_at_ms);

-- The id of the last audit row a forwarder delivered, so a restart neither resends nor skips.
CREATE TABLE forward_cursors (
    name    TEXT    PRIMARY KEY,
    last_id INTEGER NOT NULL
) STRICT;
