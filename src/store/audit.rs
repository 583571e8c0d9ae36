//! The append-only audit log.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::Store;
use crate::domain::ObjectGuid;
use crate::domain::clock::Timestamp;
use crate::domain::store::{AuditEvent, AuditKind, AuditLog, AuditRecord, Outcome, StoreError};

#[async_trait]
impl AuditLog for Store {
    async fn record(&self, event: &AuditEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_events (at_ms, event, outcome, object_guid, sam_account_name,
                 actor, client_ip, method, reason, login_hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(event.at.as_millis())
        .bind(event.event.as_str())
        .bind(event.outcome.as_str())
        .bind(event.object_guid.map(|g| g.to_string()))
        .bind(event.sam_account_name.as_deref())
        .bind(event.actor.as_deref())
        .bind(event.client_ip.as_deref())
        .bind(event.method.as_deref())
        .bind(event.reason.as_deref())
        .bind(event.login_hash.as_deref())
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    async fn since(&self, since: Timestamp, limit: i64) -> Result<Vec<AuditRecord>, StoreError> {
        // Ordered by time rather than id: instances sharing a database insert with their own
        // clocks, so ids need not follow time. The id breaks ties so pages are stable.
        let rows = sqlx::query(
            "SELECT id, at_ms, event, outcome, object_guid, sam_account_name, actor, client_ip,
                 method, reason, login_hash
             FROM audit_events
             WHERE at_ms >= $1
             ORDER BY at_ms, id
             LIMIT $2",
        )
        .bind(since.as_millis())
        // SQLite reads a negative LIMIT as "no limit" and PostgreSQL refuses it; both agree on 0.
        .bind(limit.max(0))
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    async fn for_user(
        &self,
        user: &ObjectGuid,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at_ms, event, outcome, object_guid, sam_account_name, actor, client_ip,
                 method, reason, login_hash
             FROM audit_events
             WHERE object_guid = $1
             ORDER BY at_ms DESC, id DESC
             LIMIT $2",
        )
        .bind(user.to_string())
        .bind(limit.max(0))
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    async fn after(
        &self,
        at: Timestamp,
        id: i64,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        // Keyset pagination in the same (at_ms, id) order as `since`; row values compare
        // lexicographically on both SQLite and PostgreSQL.
        let rows = sqlx::query(
            "SELECT id, at_ms, event, outcome, object_guid, sam_account_name, actor, client_ip,
                 method, reason, login_hash
             FROM audit_events
             WHERE (at_ms, id) > ($1, $2)
             ORDER BY at_ms, id
             LIMIT $3",
        )
        .bind(at.as_millis())
        .bind(id)
        .bind(limit.max(0))
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter().map(record_from_row).collect()
    }
}

pub(super) fn record_from_row(row: &AnyRow) -> Result<AuditRecord, StoreError> {
    let object_guid = row
        .try_get::<Option<String>, _>("object_guid")?
        .map(|text| {
            text.parse::<ObjectGuid>().map_err(|e| {
                StoreError::new(format!("invalid object_guid {text:?} in audit_events: {e}"))
            })
        })
        .transpose()?;
    Ok(AuditRecord {
        id: row.try_get("id")?,
        event: AuditEvent {
            at: Timestamp::from_millis(row.try_get("at_ms")?),
            event: parsed(row, "event", AuditKind::parse)?,
            outcome: parsed(row, "outcome", Outcome::parse)?,
            object_guid,
            sam_account_name: row.try_get("sam_account_name")?,
            actor: row.try_get("actor")?,
            client_ip: row.try_get("client_ip")?,
            method: row.try_get("method")?,
            reason: row.try_get("reason")?,
            login_hash: row.try_get("login_hash")?,
        },
    })
}

/// Column `name`, read as one of the names the enums write. A name they don't know was not
/// written by this service: an error naming it, not a guess.
fn parsed<T>(row: &AnyRow, name: &str, parse: fn(&str) -> Option<T>) -> Result<T, StoreError> {
    let text: String = row.try_get(name)?;
    parse(&text).ok_or_else(|| StoreError::new(format!("unknown {name} {text:?} in audit_events")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::memory_store;

    fn event(at: Timestamp, event: AuditKind) -> AuditEvent {
        AuditEvent {
            at,
            event,
            outcome: Outcome::Success,
            object_guid: None,
            sam_account_name: None,
            actor: None,
            client_ip: None,
            method: None,
            reason: None,
            login_hash: None,
        }
    }

    #[tokio::test]
    async fn events_come_back_oldest_first_from_the_given_time() {
        let store = memory_store().await;
        let full = AuditEvent {
            object_guid: Some(ObjectGuid(uuid::Uuid::new_v4())),
            sam_account_name: Some("jdoe".into()),
            actor: Some("helpdesk1".into()),
            client_ip: Some("2001:db8::1".into()),
            method: Some("totp".into()),
            reason: Some("wrong code".into()),
            login_hash: Some("0123456789abcdef0123456789abcdef".into()),
            outcome: Outcome::Failure,
            ..event(Timestamp::from_millis(2_000), AuditKind::Verification)
        };
        store
            .record(&event(
                Timestamp::from_millis(3_000),
                AuditKind::PasswordReset,
            ))
            .await
            .unwrap();
        store.record(&full).await.unwrap();
        store
            .record(&event(Timestamp::from_millis(1_000), AuditKind::SignIn))
            .await
            .unwrap();

        let records = store
            .since(Timestamp::from_millis(2_000), 10)
            .await
            .unwrap();
        let events: Vec<_> = records.iter().map(|r| r.event.clone()).collect();
        assert_eq!(
            events,
            [
                full,
                event(Timestamp::from_millis(3_000), AuditKind::PasswordReset)
            ]
        );
        assert!(records[0].id > records[1].id, "ordered by time, not by id");

        assert_eq!(
            store.since(Timestamp::from_millis(0), 1).await.unwrap()[0].event,
            event(Timestamp::from_millis(1_000), AuditKind::SignIn)
        );
        assert!(
            store
                .since(Timestamp::from_millis(0), 0)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .since(Timestamp::from_millis(0), -1)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
