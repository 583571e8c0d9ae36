//! Audit retention (`audit.retain_days`): old audit rows are deleted in small batches, each its
//! own short statement, so SQLite's single write lock is never held for long and the flows'
//! writes slip in between.

use super::Store;
use crate::domain::clock::Timestamp;
use crate::domain::store::StoreError;

/// Rows per delete: a batch takes milliseconds on SQLite.
pub const AUDIT_PRUNE_BATCH: u32 = 1_000;

impl Store {
    /// Deletes the audit rows from before `older_than`, `batch` at a time, oldest first; returns
    /// how many went.
    pub async fn prune_audit(&self, older_than: Timestamp, batch: u32) -> Result<u64, StoreError> {
        let batch = batch.max(1);
        let mut deleted = 0;
        loop {
            let done = sqlx::query(
                "DELETE FROM audit_events WHERE id IN (
                     SELECT id FROM audit_events WHERE at_ms < $1 ORDER BY at_ms, id LIMIT $2)",
            )
            .bind(older_than.as_millis())
            .bind(i64::from(batch))
            .execute(&mut *self.conn().await?)
            .await?
            .rows_affected();
            deleted += done;
            if done < u64::from(batch) {
                return Ok(deleted);
            }
            // Lets waiting writers take the lock before the next batch.
            tokio::task::yield_now().await;
        }
    }
}
