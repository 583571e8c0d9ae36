//! The local password history: keyed hashes of the passwords the service wrote, per account.

use async_trait::async_trait;
use sqlx::{Connection, Row};

use super::Store;
use crate::domain::ObjectGuid;
use crate::domain::clock::Timestamp;
use crate::domain::store::{PasswordHistoryStore, StoreError};

#[async_trait]
impl PasswordHistoryStore for Store {
    async fn password_hashes(
        &self,
        user: &ObjectGuid,
        limit: u32,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let rows = sqlx::query(
            "SELECT hash FROM password_history
             WHERE object_guid = $1
             ORDER BY set_at_ms DESC, id DESC
             LIMIT $2",
        )
        .bind(user.to_string())
        .bind(i64::from(limit))
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter()
            .map(|row| row.try_get::<Vec<u8>, _>("hash").map_err(StoreError::from))
            .collect()
    }

    async fn remember_password(
        &self,
        user: &ObjectGuid,
        hash: &[u8],
        at: Timestamp,
        keep: u32,
    ) -> Result<(), StoreError> {
        let guid = user.to_string();
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        sqlx::query(
            "INSERT INTO password_history (object_guid, hash, set_at_ms) VALUES ($1, $2, $3)",
        )
        .bind(&guid)
        .bind(hash)
        .bind(at.as_millis())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM password_history
             WHERE object_guid = $1
               AND id NOT IN (SELECT id FROM password_history
                              WHERE object_guid = $1
                              ORDER BY set_at_ms DESC, id DESC
                              LIMIT $2)",
        )
        .bind(&guid)
        .bind(i64::from(keep.max(1)))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn forget_passwords(&self, user: &ObjectGuid) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM password_history WHERE object_guid = $1")
            .bind(user.to_string())
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::memory_store;

    #[tokio::test]
    async fn the_newest_are_kept_and_read_newest_first() {
        let store = memory_store().await;
        let ann = ObjectGuid(uuid::Uuid::new_v4());
        let bob = ObjectGuid(uuid::Uuid::new_v4());
        for (i, hash) in [b"h1", b"h2", b"h3", b"h4"].iter().enumerate() {
            let at = Timestamp::from_millis(1_000 + i as i64);
            store.remember_password(&ann, *hash, at, 3).await.unwrap();
        }
        store
            .remember_password(&bob, b"b1", Timestamp::from_millis(5), 3)
            .await
            .unwrap();
        let hashes = store.password_hashes(&ann, 24).await.unwrap();
        assert_eq!(hashes, [b"h4".to_vec(), b"h3".to_vec(), b"h2".to_vec()]);
        assert_eq!(store.password_hashes(&ann, 1).await.unwrap(), [b"h4"]);
        // A shorter history keeps fewer at the next password.
        store
            .remember_password(&ann, b"h5", Timestamp::from_millis(2_000), 1)
            .await
            .unwrap();
        assert_eq!(store.password_hashes(&ann, 24).await.unwrap(), [b"h5"]);
        store.forget_passwords(&ann).await.unwrap();
        assert!(store.password_hashes(&ann, 24).await.unwrap().is_empty());
        assert_eq!(store.password_hashes(&bob, 24).await.unwrap(), [b"b1"]);
    }
}
