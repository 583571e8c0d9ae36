-- The local password history, kept where the DCs do not apply AD's history to a reset (no policy
-- hints): for each account, the last N passwords this service wrote (N = the account's policy
-- history length), each only as a keyed Argon2id hash under a key derived from
-- security.secret_key and a salt of the account's own. Never a password. Keep in step with
-- ../postgres/0008_password_history.sql.
CREATE TABLE password_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    object_guid TEXT    NOT NULL,
    hash        BLOB    NOT NULL,
    set_at_ms   INTEGER NOT NULL
) STRICT;

CREATE INDEX password_history_object_guid ON password_history (object_guid, set_at_ms, id);
