//! Throttle counters: timestamped events per key, and blocks until a time.

use async_trait::async_trait;
use sqlx::Connection;

use super::Store;
use crate::domain::clock::Timestamp;
use crate::domain::store::{StoreError, ThrottleStore};

#[async_trait]
impl ThrottleStore for Store {
    async fn hit(&self, key: &str, at: Timestamp, since: Timestamp) -> Result<i64, StoreError> {
        // Insert, then count. The count runs after the insert committed, so it sees this event
        // and every event committed before it: of N concurrent hits on N instances the last to
        // count sees all N, and none can slip under a limit by racing. (No single statement
        // does this on both databases: PostgreSQL's RETURNING subqueries do not see the row
        // being inserted, and SQLite has no INSERT inside WITH.)
        let mut conn = self.conn().await?;
        sqlx::query("INSERT INTO throttle_events (key, at_ms) VALUES ($1, $2)")
            .bind(key)
            .bind(at.as_millis())
            .execute(&mut *conn)
            .await?;
        let count = sqlx::query_scalar(
            "SELECT COUNT(*) FROM throttle_events WHERE key = $1 AND at_ms >= $2",
        )
        .bind(key)
        .bind(since.as_millis())
        .fetch_one(&mut *conn)
        .await?;
        Ok(count)
    }

    async fn count(&self, key: &str, since: Timestamp) -> Result<i64, StoreError> {
        let count = sqlx::query_scalar(
            "SELECT COUNT(*) FROM throttle_events WHERE key = $1 AND at_ms >= $2",
        )
        .bind(key)
        .bind(since.as_millis())
        .fetch_one(&mut *self.conn().await?)
        .await?;
        Ok(count)
    }

    async fn block(&self, key: &str, until: Timestamp) -> Result<(), StoreError> {
        // The comparison is in the upsert, so of two instances blocking at once the later end
        // wins whatever the order. (`max(a, b)` is SQLite only and `GREATEST` PostgreSQL only;
        // a WHERE on DO UPDATE works on both.)
        sqlx::query(
            "INSERT INTO throttle_blocks (key, until_ms) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET until_ms = excluded.until_ms
             WHERE excluded.until_ms > throttle_blocks.until_ms",
        )
        .bind(key)
        .bind(until.as_millis())
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    async fn blocked_until(
        &self,
        key: &str,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError> {
        let until: Option<i64> = sqlx::query_scalar(
            "SELECT until_ms FROM throttle_blocks WHERE key = $1 AND until_ms > $2",
        )
        .bind(key)
        .bind(now.as_millis())
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        Ok(until.map(Timestamp::from_millis))
    }

    async fn lift_block(
        &self,
        key: &str,
        counter: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        let lifted = sqlx::query("DELETE FROM throttle_blocks WHERE key = $1 AND until_ms > $2")
            .bind(key)
            .bind(now.as_millis())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM throttle_blocks WHERE key = $1")
            .bind(key)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM throttle_events WHERE key = $1")
            .bind(counter)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(lifted.rows_affected() > 0)
    }

    async fn prune(&self, before: Timestamp) -> Result<u64, StoreError> {
        let events = sqlx::query("DELETE FROM throttle_events WHERE at_ms < $1")
            .bind(before.as_millis())
            .execute(&mut *self.conn().await?)
            .await?;
        let blocks = sqlx::query("DELETE FROM throttle_blocks WHERE until_ms < $1")
            .bind(before.as_millis())
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(events.rows_affected() + blocks.rows_affected())
    }
}
