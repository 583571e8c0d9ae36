//! Emailed one-time codes, at most one per (purpose, subject), stored as keyed hashes.

use async_trait::async_trait;
use sqlx::Row;

use super::Store;
use crate::domain::clock::Timestamp;
use crate::domain::store::{CodePurpose, CodeStore, PendingCode, StoreError};

#[async_trait]
impl CodeStore for Store {
    async fn put_code(&self, code: &PendingCode) -> Result<(), StoreError> {
        // One statement, so two resends racing on two instances leave one code, not a
        // primary-key error.
        sqlx::query(
            "INSERT INTO pending_codes (purpose, subject, code_hash, address, created_at_ms,
                 expires_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (purpose, subject) DO UPDATE SET
                 code_hash = excluded.code_hash,
                 address = excluded.address,
                 created_at_ms = excluded.created_at_ms,
                 expires_at_ms = excluded.expires_at_ms",
        )
        .bind(code.purpose.as_str())
        .bind(code.subject.as_slice())
        .bind(code.code_hash.as_slice())
        .bind(code.address.as_str())
        .bind(code.created_at.as_millis())
        .bind(code.expires_at.as_millis())
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    async fn code(
        &self,
        purpose: CodePurpose,
        subject: &[u8],
    ) -> Result<Option<PendingCode>, StoreError> {
        // Expired codes are returned too (the trait takes no time); the caller checks
        // `expires_at_ms`, and pruning removes them.
        let row = sqlx::query(
            "SELECT code_hash, address, created_at_ms, expires_at_ms
             FROM pending_codes
             WHERE purpose = $1 AND subject = $2",
        )
        .bind(purpose.as_str())
        .bind(subject)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(PendingCode {
            purpose,
            subject: subject.to_vec(),
            code_hash: row.try_get("code_hash")?,
            address: row.try_get("address")?,
            created_at: Timestamp::from_millis(row.try_get("created_at_ms")?),
            expires_at: Timestamp::from_millis(row.try_get("expires_at_ms")?),
        }))
    }

    async fn take_code(
        &self,
        purpose: CodePurpose,
        subject: &[u8],
        code_hash: &[u8],
    ) -> Result<bool, StoreError> {
        // Whoever deletes the row used the code: the database lets only one DELETE find it.
        // Matching the hash too means a resend in between is not consumed by the old code.
        let done = sqlx::query(
            "DELETE FROM pending_codes WHERE purpose = $1 AND subject = $2 AND code_hash = $3",
        )
        .bind(purpose.as_str())
        .bind(subject)
        .bind(code_hash)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
