//! The verification methods users registered, one row per (user, kind).

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::Store;
use crate::domain::ObjectGuid;
use crate::domain::clock::Timestamp;
use crate::domain::store::{EnrolledMethod, MethodKind, RegistrationStore, StoreError};

#[async_trait]
impl RegistrationStore for Store {
    async fn methods(&self, user: &ObjectGuid) -> Result<Vec<EnrolledMethod>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, address, secret_sealed, last_step, confirmed_at_ms, created_at_ms
             FROM enrollment_methods
             WHERE object_guid = $1
             ORDER BY kind",
        )
        .bind(user.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(method_from_row).collect()
    }

    async fn put_method(
        &self,
        user: &ObjectGuid,
        sam_account_name: &str,
        method: &EnrolledMethod,
    ) -> Result<(), StoreError> {
        // One statement, so two instances registering the same user at once cannot collide on
        // the primary key as a separate SELECT-then-INSERT could.
        sqlx::query(
            "INSERT INTO enrollment_methods (object_guid, kind, sam_account_name, address,
                 secret_sealed, last_step, confirmed_at_ms, created_at_ms, updated_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (object_guid, kind) DO UPDATE SET
                 sam_account_name = excluded.sam_account_name,
                 address = excluded.address,
                 secret_sealed = excluded.secret_sealed,
                 last_step = excluded.last_step,
                 confirmed_at_ms = excluded.confirmed_at_ms,
                 created_at_ms = excluded.created_at_ms,
                 updated_at_ms = excluded.updated_at_ms",
        )
        .bind(user.to_string())
        .bind(method.kind.as_str())
        .bind(sam_account_name)
        .bind(method.address.as_deref())
        .bind(method.secret_sealed.as_deref())
        .bind(method.last_step)
        .bind(method.confirmed_at.map(Timestamp::as_millis))
        .bind(method.created_at.as_millis())
        .bind(self.now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn remove_method(&self, user: &ObjectGuid, kind: MethodKind) -> Result<bool, StoreError> {
        let done =
            sqlx::query("DELETE FROM enrollment_methods WHERE object_guid = $1 AND kind = $2")
                .bind(user.to_string())
                .bind(kind.as_str())
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn remove_all(&self, user: &ObjectGuid) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM enrollment_methods WHERE object_guid = $1")
            .bind(user.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn advance_totp_step(&self, user: &ObjectGuid, step: i64) -> Result<bool, StoreError> {
        // The comparison is inside the UPDATE so the database decides the race: of several
        // instances accepting the same code, exactly one changes the row. `updated_at_ms` is
        // left alone because using a method does not change the registration.
        let done = sqlx::query(
            "UPDATE enrollment_methods SET last_step = $1
             WHERE object_guid = $2 AND kind = 'totp' AND (last_step IS NULL OR last_step < $1)",
        )
        .bind(step)
        .bind(user.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn reconfirm_method(
        &self,
        user: &ObjectGuid,
        kind: MethodKind,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        // Only the confirmation time changes: the TOTP step stays where `advance_totp_step` put
        // it, whatever raced in between.
        let done = sqlx::query(
            "UPDATE enrollment_methods SET confirmed_at_ms = $1, updated_at_ms = $2
             WHERE object_guid = $3 AND kind = $4 AND confirmed_at_ms IS NOT NULL",
        )
        .bind(at.as_millis())
        .bind(self.now_ms())
        .bind(user.to_string())
        .bind(kind.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

fn method_from_row(row: &AnyRow) -> Result<EnrolledMethod, StoreError> {
    let kind: String = row.try_get("kind")?;
    let kind = MethodKind::parse(&kind).ok_or_else(|| {
        StoreError::new(format!(
            "unknown method kind {kind:?} in enrollment_methods"
        ))
    })?;
    Ok(EnrolledMethod {
        kind,
        address: row.try_get("address")?,
        secret_sealed: row.try_get("secret_sealed")?,
        last_step: row.try_get("last_step")?,
        confirmed_at: row
            .try_get::<Option<i64>, _>("confirmed_at_ms")?
            .map(Timestamp::from_millis),
        created_at: Timestamp::from_millis(row.try_get("created_at_ms")?),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::*;
    use crate::domain::clock::Clock;
    use crate::store::tests::memory_store;

    struct FixedClock(SystemTime);

    impl Clock for FixedClock {
        fn now(&self) -> Timestamp {
            Timestamp::from_system_time(self.0)
        }
    }

    fn totp(last_step: Option<i64>) -> EnrolledMethod {
        EnrolledMethod {
            kind: MethodKind::Totp,
            address: None,
            secret_sealed: Some(vec![0, 1, 2, 0xff]),
            last_step,
            confirmed_at: Some(Timestamp::from_millis(1_700_000_000_500)),
            created_at: Timestamp::from_millis(1_700_000_000_000),
        }
    }

    fn email() -> EnrolledMethod {
        EnrolledMethod {
            kind: MethodKind::Email,
            address: Some("jdoe@example.org".into()),
            secret_sealed: None,
            last_step: None,
            confirmed_at: None,
            created_at: Timestamp::from_millis(1_700_000_000_000),
        }
    }

    fn guid() -> ObjectGuid {
        ObjectGuid(uuid::Uuid::new_v4())
    }

    #[tokio::test]
    async fn methods_round_trip_and_are_replaced_per_kind() {
        let store = memory_store().await;
        let user = guid();
        store.put_method(&user, "jdoe", &totp(None)).await.unwrap();
        store.put_method(&user, "jdoe", &email()).await.unwrap();
        assert_eq!(store.methods(&user).await.unwrap(), [email(), totp(None)]);

        let confirmed = EnrolledMethod {
            confirmed_at: Some(Timestamp::from_millis(1_700_000_001_000)),
            ..email()
        };
        store.put_method(&user, "jdoe2", &confirmed).await.unwrap();
        assert_eq!(store.methods(&user).await.unwrap(), [confirmed, totp(None)]);
        assert!(store.methods(&guid()).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn guid_is_stored_as_lowercase_text_and_put_stamps_updated_at() {
        let at = UNIX_EPOCH + Duration::from_millis(1_800_000_000_123);
        let store = memory_store().await.with_clock(Arc::new(FixedClock(at)));
        let user: ObjectGuid = "00112233-4455-6677-8899-AABBCCDDEEFF".parse().unwrap();
        store.put_method(&user, "jdoe", &email()).await.unwrap();
        let (stored, updated): (String, i64) =
            sqlx::query_as("SELECT object_guid, updated_at_ms FROM enrollment_methods")
                .fetch_one(&store.pool)
                .await
                .unwrap();
        assert_eq!(stored, "00112233-4455-6677-8899-aabbccddeeff");
        assert_eq!(updated, 1_800_000_000_123);
    }

    #[tokio::test]
    async fn remove_reports_what_it_removed() {
        let store = memory_store().await;
        let (user, other) = (guid(), guid());
        for who in [&user, &other] {
            store.put_method(who, "jdoe", &totp(None)).await.unwrap();
            store.put_method(who, "jdoe", &email()).await.unwrap();
        }
        assert!(store.remove_method(&user, MethodKind::Email).await.unwrap());
        assert!(!store.remove_method(&user, MethodKind::Email).await.unwrap());
        assert_eq!(store.remove_all(&user).await.unwrap(), 1);
        assert_eq!(store.remove_all(&user).await.unwrap(), 0);
        assert_eq!(store.methods(&other).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn totp_steps_only_move_forward() {
        let store = memory_store().await;
        let user = guid();
        assert!(
            !store.advance_totp_step(&user, 1).await.unwrap(),
            "no method yet"
        );
        store.put_method(&user, "jdoe", &email()).await.unwrap();
        assert!(
            !store.advance_totp_step(&user, 1).await.unwrap(),
            "email has no step"
        );
        store.put_method(&user, "jdoe", &totp(None)).await.unwrap();
        assert!(store.advance_totp_step(&user, 100).await.unwrap());
        assert!(!store.advance_totp_step(&user, 100).await.unwrap());
        assert!(!store.advance_totp_step(&user, 99).await.unwrap());
        assert!(store.advance_totp_step(&user, 101).await.unwrap());
        let methods = store.methods(&user).await.unwrap();
        assert_eq!(methods[1].last_step, Some(101));
        assert_eq!(methods[0], email());
    }

    #[tokio::test]
    async fn an_unknown_kind_is_an_error_not_a_skip() {
        let store = memory_store().await;
        let user = guid();
        store.put_method(&user, "jdoe", &email()).await.unwrap();
        // The CHECK constraint keeps other kinds out; this stands for a row written by a newer
        // release that added a kind this one does not know.
        sqlx::query("PRAGMA ignore_check_constraints = ON")
            .execute(&store.pool)
            .await
            .unwrap();
        sqlx::query("UPDATE enrollment_methods SET kind = 'webauthn'")
            .execute(&store.pool)
            .await
            .unwrap();
        let message = store.methods(&user).await.unwrap_err().message;
        assert!(message.contains("webauthn"), "{message}");
    }
}
