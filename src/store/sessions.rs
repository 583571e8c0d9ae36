//! Signed-in sessions, keyed by the SHA-256 of their bearer token.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, parse_guid};
use crate::domain::ObjectGuid;
use crate::domain::clock::Timestamp;
use crate::domain::store::{Session, SessionKind, SessionStore, StoreError};

#[async_trait]
impl SessionStore for Store {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, kind, object_guid, sam_account_name, created_at_ms,
                 expires_at_ms, last_seen_at_ms, pending_totp, failures, stepped_up_at_ms,
                 pending_totp_name)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(session.token_hash.as_slice())
        .bind(session.kind.as_str())
        .bind(session.user.to_string())
        .bind(session.sam_account_name.as_str())
        .bind(session.created_at.as_millis())
        .bind(session.expires_at.as_millis())
        .bind(session.last_seen_at.as_millis())
        .bind(session.pending_totp.as_deref())
        .bind(session.failures)
        .bind(session.stepped_up_at.map(Timestamp::as_millis))
        .bind(session.pending_totp_name.as_deref())
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    async fn session(
        &self,
        token_hash: &[u8],
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(
            "SELECT token_hash, kind, object_guid, sam_account_name, created_at_ms, expires_at_ms,
                 last_seen_at_ms, pending_totp, failures, stepped_up_at_ms, pending_totp_name
             FROM sessions
             WHERE token_hash = $1 AND expires_at_ms > $2",
        )
        .bind(token_hash)
        .bind(now.as_millis())
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn touch_session(&self, token_hash: &[u8], now: Timestamp) -> Result<(), StoreError> {
        // Only forward: instances' clocks differ a little, and a request answered late by one
        // must not make the session look idle for longer than it was.
        sqlx::query(
            "UPDATE sessions SET last_seen_at_ms = $1
             WHERE token_hash = $2 AND last_seen_at_ms < $1",
        )
        .bind(now.as_millis())
        .bind(token_hash)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    async fn set_pending_totp(
        &self,
        token_hash: &[u8],
        sealed: Option<&[u8]>,
        name: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sessions SET pending_totp = $1, pending_totp_name = $2 WHERE token_hash = $3",
        )
        .bind(sealed)
        .bind(name)
        .bind(token_hash)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    async fn add_session_failure(&self, token_hash: &[u8]) -> Result<i64, StoreError> {
        // The increment and the read are one statement, so concurrent wrong codes on several
        // instances are all counted and each caller sees its own total.
        let failures: Option<i64> = sqlx::query_scalar(
            "UPDATE sessions SET failures = failures + 1 WHERE token_hash = $1
             RETURNING failures",
        )
        .bind(token_hash)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        failures.ok_or_else(|| StoreError::new("no such session (signed out or pruned)"))
    }

    async fn delete_session(&self, token_hash: &[u8]) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(())
    }

    async fn set_stepped_up(&self, token_hash: &[u8], at: Timestamp) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET stepped_up_at_ms = $1 WHERE token_hash = $2")
            .bind(at.as_millis())
            .bind(token_hash)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(())
    }

    async fn delete_user_sessions(
        &self,
        user: &ObjectGuid,
        kind: SessionKind,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE object_guid = $1 AND kind = $2")
            .bind(user.to_string())
            .bind(kind.as_str())
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(done.rows_affected())
    }
}

fn session_from_row(row: &AnyRow) -> Result<Session, StoreError> {
    let kind: String = row.try_get("kind")?;
    let kind = match kind.as_str() {
        "enrollment" => SessionKind::Enrollment,
        "helpdesk" => SessionKind::Helpdesk,
        _ => {
            return Err(StoreError::new(format!(
                "unknown session kind {kind:?} in sessions"
            )));
        }
    };
    Ok(Session {
        token_hash: row.try_get("token_hash")?,
        kind,
        user: parse_guid(row.try_get("object_guid")?, "sessions")?,
        sam_account_name: row.try_get("sam_account_name")?,
        created_at: Timestamp::from_millis(row.try_get("created_at_ms")?),
        expires_at: Timestamp::from_millis(row.try_get("expires_at_ms")?),
        last_seen_at: Timestamp::from_millis(row.try_get("last_seen_at_ms")?),
        pending_totp: row.try_get("pending_totp")?,
        pending_totp_name: row.try_get("pending_totp_name")?,
        failures: row.try_get("failures")?,
        stepped_up_at: row
            .try_get::<Option<i64>, _>("stepped_up_at_ms")?
            .map(Timestamp::from_millis),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::memory_store;

    fn session() -> Session {
        Session {
            token_hash: vec![1; 32],
            kind: SessionKind::Helpdesk,
            user: ObjectGuid(uuid::Uuid::new_v4()),
            sam_account_name: "op".into(),
            created_at: Timestamp::from_millis(1_000),
            expires_at: Timestamp::from_millis(2_000),
            last_seen_at: Timestamp::from_millis(1_000),
            pending_totp: None,
            pending_totp_name: None,
            failures: 0,
            stepped_up_at: None,
        }
    }

    #[tokio::test]
    async fn a_session_is_valid_until_its_end_exclusive() {
        let store = memory_store().await;
        let s = session();
        store.create_session(&s).await.unwrap();
        assert_eq!(
            store
                .session(&[1; 32], Timestamp::from_millis(1_999))
                .await
                .unwrap(),
            Some(s)
        );
        assert_eq!(
            store
                .session(&[1; 32], Timestamp::from_millis(2_000))
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn unreadable_rows_are_errors_not_skips() {
        let store = memory_store().await;
        store.create_session(&session()).await.unwrap();
        // Stands for a row written by a newer release with a kind this one does not know.
        sqlx::query("PRAGMA ignore_check_constraints = ON")
            .execute(&store.pool)
            .await
            .unwrap();
        sqlx::query("UPDATE sessions SET kind = 'kiosk'")
            .execute(&store.pool)
            .await
            .unwrap();
        let message = store
            .session(&[1; 32], Timestamp::from_millis(1_500))
            .await
            .unwrap_err()
            .message;
        assert!(message.contains("kiosk"), "{message}");

        sqlx::query("UPDATE sessions SET kind = 'helpdesk', object_guid = 'CN=op'")
            .execute(&store.pool)
            .await
            .unwrap();
        let message = store
            .session(&[1; 32], Timestamp::from_millis(1_500))
            .await
            .unwrap_err()
            .message;
        assert!(message.contains("CN=op"), "{message}");
    }
}
