//! The webhook outbox (calls still to make, claimed with a lease so that several instances over
//! one database make each call once) and the forwarders' cursors into the audit log.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::Store;
use crate::domain::store::{AuditRecord, StoreError};

/// A webhook call waiting in `hook_outbox`. `body` is the event as sent, never a password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookCall {
    pub id: String,
    /// `after_reset` etc.: whose URL to call.
    pub hook: String,
    pub body: String,
    pub created_at_ms: i64,
    pub give_up_at_ms: i64,
    pub next_attempt_at_ms: i64,
    pub attempts: i64,
}

fn call(r: &AnyRow) -> Result<HookCall, StoreError> {
    Ok(HookCall {
        id: r.try_get("id")?,
        hook: r.try_get("hook")?,
        body: r.try_get("body")?,
        created_at_ms: r.try_get("created_at_ms")?,
        give_up_at_ms: r.try_get("give_up_at_ms")?,
        next_attempt_at_ms: r.try_get("next_attempt_at_ms")?,
        attempts: r.try_get("attempts")?,
    })
}

impl Store {
    pub async fn insert_hook_call(&self, c: &HookCall) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO hook_outbox (id, hook, body, created_at_ms, give_up_at_ms,
                 next_attempt_at_ms, attempts)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(c.id.as_str())
        .bind(c.hook.as_str())
        .bind(c.body.as_str())
        .bind(c.created_at_ms)
        .bind(c.give_up_at_ms)
        .bind(c.next_attempt_at_ms)
        .bind(c.attempts)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    /// Claims up to `limit` calls due at `now_ms` that nobody holds, until `until_ms`.
    pub async fn claim_hook_calls(
        &self,
        now_ms: i64,
        until_ms: i64,
        limit: i64,
    ) -> Result<Vec<HookCall>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM hook_outbox
             WHERE next_attempt_at_ms <= $1 AND (claimed_until_ms IS NULL OR claimed_until_ms <= $1)
             ORDER BY next_attempt_at_ms
             LIMIT $2",
        )
        .bind(now_ms)
        .bind(limit.max(0))
        .fetch_all(&mut *self.conn().await?)
        .await?;
        let mut claimed = Vec::with_capacity(ids.len());
        for id in ids {
            // One statement: of two instances racing for a row, the database lets one UPDATE match.
            let row = sqlx::query(
                "UPDATE hook_outbox SET claimed_until_ms = $3
                 WHERE id = $1 AND next_attempt_at_ms <= $2
                     AND (claimed_until_ms IS NULL OR claimed_until_ms <= $2)
                 RETURNING id, hook, body, created_at_ms, give_up_at_ms, next_attempt_at_ms,
                     attempts",
            )
            .bind(id.as_str())
            .bind(now_ms)
            .bind(until_ms)
            .fetch_optional(&mut *self.conn().await?)
            .await?;
            if let Some(row) = row {
                claimed.push(call(&row)?);
            }
        }
        Ok(claimed)
    }

    /// Releases a claimed call for another attempt at `next_attempt_at_ms`, one more failed.
    pub async fn retry_hook_call(
        &self,
        id: &str,
        next_attempt_at_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE hook_outbox SET next_attempt_at_ms = $2, attempts = attempts + 1,
                 claimed_until_ms = NULL
             WHERE id = $1",
        )
        .bind(id)
        .bind(next_attempt_at_ms)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    /// Removes a call that was made, or given up.
    pub async fn delete_hook_call(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM hook_outbox WHERE id = $1")
            .bind(id)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(())
    }

    /// Every waiting call, oldest first (for inspection).
    pub async fn hook_calls(&self) -> Result<Vec<HookCall>, StoreError> {
        sqlx::query(
            "SELECT id, hook, body, created_at_ms, give_up_at_ms, next_attempt_at_ms, attempts
             FROM hook_outbox ORDER BY created_at_ms, id",
        )
        .fetch_all(&mut *self.conn().await?)
        .await?
        .iter()
        .map(call)
        .collect()
    }

    /// The id of the last audit row the forwarder `name` delivered; `None` before its first.
    pub async fn forward_cursor(&self, name: &str) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT last_id FROM forward_cursors WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *self.conn().await?)
                .await?,
        )
    }

    pub async fn set_forward_cursor(&self, name: &str, last_id: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO forward_cursors (name, last_id) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET last_id = excluded.last_id",
        )
        .bind(name)
        .bind(last_id)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    /// The highest audit row id, 0 for an empty log.
    pub async fn last_audit_id(&self) -> Result<i64, StoreError> {
        let last: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM audit_events")
            .fetch_one(&mut *self.conn().await?)
            .await?;
        Ok(last.unwrap_or(0))
    }

    /// Up to `limit` audit rows with an id above `id`, in id order.
    pub async fn audit_after_id(
        &self,
        id: i64,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at_ms, event, outcome, object_guid, sam_account_name, actor, client_ip,
                 method, reason, login_hash
             FROM audit_events
             WHERE id > $1
             ORDER BY id
             LIMIT $2",
        )
        .bind(id)
        .bind(limit.max(0))
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter().map(super::audit::record_from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::memory_store;

    fn waiting(id: &str, due: i64) -> HookCall {
        HookCall {
            id: id.to_owned(),
            hook: "after_reset".to_owned(),
            body: "{}".to_owned(),
            created_at_ms: 1_000,
            give_up_at_ms: 90_000,
            next_attempt_at_ms: due,
            attempts: 0,
        }
    }

    #[tokio::test]
    async fn a_call_is_claimed_once_until_released_for_a_retry() {
        let store = memory_store().await;
        store.insert_hook_call(&waiting("a", 1_000)).await.unwrap();
        store
            .insert_hook_call(&waiting("later", 5_000))
            .await
            .unwrap();
        let claimed = store.claim_hook_calls(1_000, 11_000, 10).await.unwrap();
        assert_eq!(claimed, [waiting("a", 1_000)]);
        assert!(
            store
                .claim_hook_calls(2_000, 12_000, 10)
                .await
                .unwrap()
                .is_empty()
        );

        store.retry_hook_call("a", 3_000).await.unwrap();
        let again = store.claim_hook_calls(3_000, 13_000, 10).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].attempts, 1);
        store.delete_hook_call("a").await.unwrap();
        assert_eq!(store.hook_calls().await.unwrap(), [waiting("later", 5_000)]);
    }

    #[tokio::test]
    async fn a_cursor_is_kept_and_moved() {
        let store = memory_store().await;
        assert_eq!(store.forward_cursor("syslog").await.unwrap(), None);
        store.set_forward_cursor("syslog", 7).await.unwrap();
        store.set_forward_cursor("syslog", 9).await.unwrap();
        assert_eq!(store.forward_cursor("syslog").await.unwrap(), Some(9));
        assert_eq!(store.last_audit_id().await.unwrap(), 0);
    }
}
