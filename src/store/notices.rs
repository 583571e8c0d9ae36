//! Mails sent by the batch commands, one row per (user, kind, key).

use async_trait::async_trait;

use super::Store;
use crate::domain::ObjectGuid;
use crate::domain::clock::Timestamp;
use crate::domain::store::{Notice, NoticeLog, StoreError};

#[async_trait]
impl NoticeLog for Store {
    async fn notice_sent_at(
        &self,
        user: &ObjectGuid,
        kind: &str,
        key: &str,
    ) -> Result<Option<Timestamp>, StoreError> {
        let at: Option<i64> = sqlx::query_scalar(
            "SELECT sent_at_ms FROM notices WHERE object_guid = $1 AND kind = $2 AND key = $3",
        )
        .bind(user.to_string())
        .bind(kind)
        .bind(key)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        Ok(at.map(Timestamp::from_millis))
    }

    async fn claim_notice(&self, notice: &Notice, since: Timestamp) -> Result<bool, StoreError> {
        // One statement: the database decides which of two racing runs records the notice (the
        // conditional DO UPDATE changes no row when the last one is recent enough).
        let done = sqlx::query(
            "INSERT INTO notices (object_guid, kind, key, sent_at_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (object_guid, kind, key) DO UPDATE SET sent_at_ms = excluded.sent_at_ms
             WHERE notices.sent_at_ms < $5",
        )
        .bind(notice.user.to_string())
        .bind(notice.kind.as_str())
        .bind(notice.key.as_str())
        .bind(notice.sent_at.as_millis())
        .bind(since.as_millis())
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_notice(&self, notice: &Notice) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM notices
             WHERE object_guid = $1 AND kind = $2 AND key = $3 AND sent_at_ms = $4",
        )
        .bind(notice.user.to_string())
        .bind(notice.kind.as_str())
        .bind(notice.key.as_str())
        .bind(notice.sent_at.as_millis())
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }
}
