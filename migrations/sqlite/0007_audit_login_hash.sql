-- A typed login that matched no account is kept only as a keyed hash (HMAC-SHA256 under a key
-- derived from security.secret_key, 32 lowercase hex digits of the normalised text): people type
-- passwords into username boxes. sam_account_name stays NULL on such rows. Keep in step with
-- ../postgres/0007_audit_login_hash.sql.
ALTER TABLE audit_events ADD COLUMN login_hash TEXT;
