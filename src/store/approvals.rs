//! Manager approvals of helpdesk callers, and when each user's current `manager` was first seen.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, parse_guid};
use crate::domain::ObjectGuid;
use crate::domain::clock::Timestamp;
use crate::domain::helpdesk::{ApprovalStore, ManagerApproval};
use crate::domain::store::StoreError;

#[async_trait]
impl ApprovalStore for Store {
    async fn create_approval(&self, a: &ManagerApproval) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO manager_approvals (id_hash, check_id_hash, operator, caller_guid,
                 caller_sam, caller_name, manager_guid, manager_sam, created_at_ms, expires_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(a.id_hash.as_slice())
        .bind(a.check_id_hash.as_slice())
        .bind(a.operator.as_str())
        .bind(a.caller.to_string())
        .bind(a.caller_sam.as_str())
        .bind(a.caller_name.as_deref())
        .bind(a.manager.to_string())
        .bind(a.manager_sam.as_str())
        .bind(a.created_at.as_millis())
        .bind(a.expires_at.as_millis())
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    async fn approval(&self, id_hash: &[u8]) -> Result<Option<ManagerApproval>, StoreError> {
        let row = sqlx::query(
            "SELECT id_hash, check_id_hash, operator, caller_guid, caller_sam, caller_name,
                 manager_guid, manager_sam, created_at_ms, expires_at_ms
             FROM manager_approvals WHERE id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        row.as_ref().map(approval_from_row).transpose()
    }

    async fn manager_seen_since(
        &self,
        user: &ObjectGuid,
        manager_dn: &str,
        now: Timestamp,
    ) -> Result<Timestamp, StoreError> {
        // One statement decides, whichever instance is first: a new value starts its clock, the
        // same value keeps the time it was first seen.
        sqlx::query(
            "INSERT INTO manager_seen (object_guid, manager_dn, first_seen_at_ms)
             VALUES ($1, $2, $3)
             ON CONFLICT (object_guid) DO UPDATE
                 SET manager_dn = excluded.manager_dn, first_seen_at_ms = excluded.first_seen_at_ms
                 WHERE manager_seen.manager_dn <> excluded.manager_dn",
        )
        .bind(user.to_string())
        .bind(manager_dn)
        .bind(now.as_millis())
        .execute(&mut *self.conn().await?)
        .await?;
        let since: i64 =
            sqlx::query_scalar("SELECT first_seen_at_ms FROM manager_seen WHERE object_guid = $1")
                .bind(user.to_string())
                .fetch_one(&mut *self.conn().await?)
                .await?;
        Ok(Timestamp::from_millis(since))
    }
}

fn approval_from_row(r: &AnyRow) -> Result<ManagerApproval, StoreError> {
    Ok(ManagerApproval {
        id_hash: r.try_get("id_hash")?,
        check_id_hash: r.try_get("check_id_hash")?,
        operator: r.try_get("operator")?,
        caller: parse_guid(r.try_get("caller_guid")?, "manager_approvals")?,
        caller_sam: r.try_get("caller_sam")?,
        caller_name: r.try_get("caller_name")?,
        manager: parse_guid(r.try_get("manager_guid")?, "manager_approvals")?,
        manager_sam: r.try_get("manager_sam")?,
        created_at: Timestamp::from_millis(r.try_get("created_at_ms")?),
        expires_at: Timestamp::from_millis(r.try_get("expires_at_ms")?),
    })
}
