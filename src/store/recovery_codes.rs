//! Recovery codes, one row per (user, keyed hash of a code).

use async_trait::async_trait;
use sqlx::Connection;

use super::Store;
use crate::domain::ObjectGuid;
use crate::domain::clock::Timestamp;
use crate::domain::store::{RecoveryCodeStore, StoreError};

#[async_trait]
impl RecoveryCodeStore for Store {
    async fn replace_recovery_codes(
        &self,
        user: &ObjectGuid,
        hashes: &[Vec<u8>],
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let guid = user.to_string();
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        sqlx::query("DELETE FROM recovery_codes WHERE object_guid = $1")
            .bind(&guid)
            .execute(&mut *tx)
            .await?;
        for hash in hashes {
            sqlx::query(
                "INSERT INTO recovery_codes (object_guid, code_hash, created_at_ms)
                 VALUES ($1, $2, $3)",
            )
            .bind(&guid)
            .bind(hash.as_slice())
            .bind(at.as_millis())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn remove_recovery_codes(&self, user: &ObjectGuid) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM recovery_codes WHERE object_guid = $1")
            .bind(user.to_string())
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(done.rows_affected())
    }

    async fn recovery_codes_left(&self, user: &ObjectGuid) -> Result<u64, StoreError> {
        let left: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM recovery_codes WHERE object_guid = $1 AND used_at_ms IS NULL",
        )
        .bind(user.to_string())
        .fetch_one(&mut *self.conn().await?)
        .await?;
        Ok(u64::try_from(left).unwrap_or(0))
    }

    async fn take_recovery_code(
        &self,
        user: &ObjectGuid,
        hash: &[u8],
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        // The condition is inside the UPDATE, so of two instances taking the same code the
        // database lets exactly one change the row.
        let done = sqlx::query(
            "UPDATE recovery_codes SET used_at_ms = $1
             WHERE object_guid = $2 AND code_hash = $3 AND used_at_ms IS NULL",
        )
        .bind(at.as_millis())
        .bind(user.to_string())
        .bind(hash)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::memory_store;

    #[tokio::test]
    async fn a_code_is_taken_once_and_a_new_set_voids_the_old() {
        let store = memory_store().await;
        let (ann, bob) = (
            ObjectGuid(uuid::Uuid::from_u128(1)),
            ObjectGuid(uuid::Uuid::from_u128(2)),
        );
        let at = Timestamp::from_millis(1_000);
        let old: Vec<Vec<u8>> = (0u8..10).map(|i| vec![i; 32]).collect();
        store.replace_recovery_codes(&ann, &old, at).await.unwrap();
        assert_eq!(store.recovery_codes_left(&ann).await.unwrap(), 10);
        assert!(!store.take_recovery_code(&bob, &old[0], at).await.unwrap());
        assert!(store.take_recovery_code(&ann, &old[0], at).await.unwrap());
        assert!(!store.take_recovery_code(&ann, &old[0], at).await.unwrap());
        assert_eq!(store.recovery_codes_left(&ann).await.unwrap(), 9);
        let new: Vec<Vec<u8>> = (10u8..20).map(|i| vec![i; 32]).collect();
        store.replace_recovery_codes(&ann, &new, at).await.unwrap();
        assert!(!store.take_recovery_code(&ann, &old[1], at).await.unwrap());
        assert_eq!(store.recovery_codes_left(&ann).await.unwrap(), 10);
        assert_eq!(store.remove_recovery_codes(&ann).await.unwrap(), 10);
        assert_eq!(store.recovery_codes_left(&ann).await.unwrap(), 0);
    }
}
