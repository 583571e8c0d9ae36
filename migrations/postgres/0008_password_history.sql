-- The local password history, kept where the DCs do not apply AD's history to a reset (no policy
-- hints): for each account, the last N passwords this service wrote (N = the account's policy
-- history length), each only as a keyed Argon2id hash under a key derived from
-- security.secret_key and a salt of the account's own. Never a password. Keep in step with
-- ../sqlite/0008_password_history.sql.
CREATE TABLE password_history (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    object_guid TEXT   NOT NULL,
    hash        BYTEA  NOT NULL,
    set_at_ms   BIGINT NOT NULL
);

CREATE INDEX password_history_object_guid ON password_history (object_guid, set_at_ms, id);
