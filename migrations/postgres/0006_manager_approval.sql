-- Manager approval for the helpdesk: the caller's AD manager confirms, through a mailed link, that
-- the person on the phone is the caller. Keep in step with ../sqlite/0006_manager_approval.sql.
-- Times are Unix milliseconds.

-- One row per approval link. The link's token is stored only as its hash (`id_hash`), which is
-- also the id of the reset_flows row holding the manager's own verification (attempts, expiry,
-- single use), so the approval follows every rule a verification does.
CREATE TABLE manager_approvals (
    id_hash         BYTEA    NOT NULL PRIMARY KEY,
    -- The id of the operator's `manager` check of the caller (a reset_flows row), marked
    -- verified when the manager approves.
    check_id_hash   BYTEA    NOT NULL,
    operator        TEXT    NOT NULL,
    caller_guid     TEXT    NOT NULL,
    caller_sam      TEXT    NOT NULL,
    caller_name     TEXT,
    manager_guid    TEXT    NOT NULL,
    manager_sam     TEXT    NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    expires_at_ms   BIGINT NOT NULL
);
CREATE INDEX manager_approvals_expires_at_ms ON manager_approvals (expires_at_ms);

-- When the service first saw each user's current `manager` value. Samba returns no
-- msDS-ReplValueMetaData for the linked `manager` attribute, so this is the only way there to
-- tell a manager set long ago from one set a minute before the call.
CREATE TABLE manager_seen (
    object_guid      TEXT    NOT NULL PRIMARY KEY,
    -- Lower case, so a DN that only changed case is the same manager.
    manager_dn       TEXT    NOT NULL,
    first_seen_at_ms BIGINT NOT NULL
);
