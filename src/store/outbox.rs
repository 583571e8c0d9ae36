//! The mail outbox: sealed mails waiting for the sender, claimed with a lease so that several
//! instances over one database send each mail once.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::Store;
use crate::domain::notify::{OutboxRow, OutboxStore};
use crate::domain::store::StoreError;

fn row(r: &AnyRow) -> Result<OutboxRow, StoreError> {
    Ok(OutboxRow {
        id: r.try_get("id")?,
        body_sealed: r.try_get("body_sealed")?,
        created_at_ms: r.try_get("created_at_ms")?,
        send_by_ms: r.try_get("send_by_ms")?,
        next_attempt_at_ms: r.try_get("next_attempt_at_ms")?,
        attempts: r.try_get("attempts")?,
    })
}

#[async_trait]
impl OutboxStore for Store {
    fn when_committed(&self, f: Box<dyn FnOnce() + Send>) {
        Store::when_committed(self, f);
    }

    async fn insert_mail(&self, mail: &OutboxRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO outbox (id, body_sealed, created_at_ms, send_by_ms, next_attempt_at_ms,
                 attempts)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(mail.id.as_str())
        .bind(mail.body_sealed.as_slice())
        .bind(mail.created_at_ms)
        .bind(mail.send_by_ms)
        .bind(mail.next_attempt_at_ms)
        .bind(mail.attempts)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    async fn due_mails(&self, now_ms: i64, limit: i64) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM outbox
             WHERE next_attempt_at_ms <= $1 AND (claimed_until_ms IS NULL OR claimed_until_ms <= $1)
             ORDER BY next_attempt_at_ms
             LIMIT $2",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&mut *self.conn().await?)
        .await?)
    }

    async fn claim_mail(
        &self,
        id: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Option<OutboxRow>, StoreError> {
        // One statement: of two instances racing for a row, the database lets one UPDATE match.
        let claimed = sqlx::query(
            "UPDATE outbox SET claimed_until_ms = $3
             WHERE id = $1 AND next_attempt_at_ms <= $2
                 AND (claimed_until_ms IS NULL OR claimed_until_ms <= $2)
             RETURNING id, body_sealed, created_at_ms, send_by_ms, next_attempt_at_ms, attempts",
        )
        .bind(id)
        .bind(now_ms)
        .bind(until_ms)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        claimed.as_ref().map(row).transpose()
    }

    async fn retry_mail(
        &self,
        id: &str,
        next_attempt_at_ms: i64,
        failed: bool,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET next_attempt_at_ms = $2, attempts = attempts + $3,
                 claimed_until_ms = NULL
             WHERE id = $1",
        )
        .bind(id)
        .bind(next_attempt_at_ms)
        .bind(i64::from(failed))
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    async fn delete_mail(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM outbox WHERE id = $1")
            .bind(id)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(())
    }

    async fn mails(&self) -> Result<Vec<OutboxRow>, StoreError> {
        sqlx::query(
            "SELECT id, body_sealed, created_at_ms, send_by_ms, next_attempt_at_ms, attempts
             FROM outbox ORDER BY created_at_ms, id",
        )
        .fetch_all(&mut *self.conn().await?)
        .await?
        .iter()
        .map(row)
        .collect()
    }

    async fn pending_mails(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
            .fetch_one(&mut *self.conn().await?)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::clock::Timestamp;
    use crate::store::tests::memory_store;

    fn mail(id: &str, due: i64) -> OutboxRow {
        OutboxRow {
            id: id.to_owned(),
            body_sealed: vec![7; 1040],
            created_at_ms: 1_000,
            send_by_ms: 600_000,
            next_attempt_at_ms: due,
            attempts: 0,
        }
    }

    #[tokio::test]
    async fn a_row_is_claimed_once_until_its_lease_ends() {
        let store = memory_store().await;
        store.insert_mail(&mail("a", 1_000)).await.unwrap();
        store.insert_mail(&mail("later", 5_000)).await.unwrap();
        assert_eq!(store.due_mails(1_000, 10).await.unwrap(), ["a"]);

        let claimed = store.claim_mail("a", 1_000, 61_000).await.unwrap();
        assert_eq!(claimed, Some(mail("a", 1_000)));
        assert_eq!(store.claim_mail("a", 2_000, 62_000).await.unwrap(), None);
        assert!(
            store.due_mails(60_999, 10).await.unwrap().len() == 1,
            "only `later`"
        );
        // An instance that died holding the row: another takes it once the lease ran out.
        assert!(
            store
                .claim_mail("a", 61_000, 121_000)
                .await
                .unwrap()
                .is_some()
        );

        store.retry_mail("a", 70_000, true).await.unwrap();
        assert_eq!(store.claim_mail("a", 69_999, 130_000).await.unwrap(), None);
        let again = store
            .claim_mail("a", 70_000, 130_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((again.attempts, again.next_attempt_at_ms), (1, 70_000));

        assert_eq!(store.pending_mails().await.unwrap(), 2);
        store.delete_mail("a").await.unwrap();
        assert_eq!(store.pending_mails().await.unwrap(), 1);
        assert_eq!(store.claim_mail("a", 200_000, 260_000).await.unwrap(), None);
    }

    #[tokio::test]
    async fn rows_nobody_sent_are_pruned_a_day_after_their_end() {
        let store = memory_store().await;
        store.insert_mail(&mail("old", 1_000)).await.unwrap();
        let mut recent = mail("recent", 1_000);
        recent.send_by_ms = 700_000;
        store.insert_mail(&recent).await.unwrap();
        let day = crate::store::FLOW_RETENTION_MS;
        assert_eq!(
            store
                .prune_expired(Timestamp::from_millis(600_000 + day))
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            store
                .prune_expired(Timestamp::from_millis(600_001 + day))
                .await
                .unwrap(),
            1
        );
        let left: Vec<_> = store
            .mails()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(left, ["recent"]);
    }
}
