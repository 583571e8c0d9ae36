//! The verification methods users registered, one row per method: at most one email address
//! and up to five authenticator apps per user.

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
            "SELECT id, kind, name, address, secret_sealed, last_step, confirmed_at_ms,
                 created_at_ms, last_used_at_ms
             FROM enrollment_methods
             WHERE object_guid = $1
             ORDER BY kind, created_at_ms, id",
        )
        .bind(user.to_string())
        .fetch_all(&mut *self.conn().await?)
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
        // a key as a separate SELECT-then-INSERT could. An address replaces the user's address
        // (whatever its id); an app replaces only the app of its id.
        let conflict = match method.kind {
            MethodKind::Email => "(object_guid) WHERE kind = 'email'",
            // Recovery codes and passkeys have tables of their own; this one's CHECK refuses
            // them.
            MethodKind::Totp | MethodKind::RecoveryCode | MethodKind::Passkey => {
                "(object_guid, id)"
            }
        };
        let sql = format!(
            "INSERT INTO enrollment_methods (object_guid, id, kind, sam_account_name, name,
                 address, secret_sealed, last_step, confirmed_at_ms, created_at_ms,
                 updated_at_ms, last_used_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT {conflict} DO UPDATE SET
                 id = excluded.id,
                 sam_account_name = excluded.sam_account_name,
                 name = excluded.name,
                 address = excluded.address,
                 secret_sealed = excluded.secret_sealed,
                 last_step = excluded.last_step,
                 confirmed_at_ms = excluded.confirmed_at_ms,
                 created_at_ms = excluded.created_at_ms,
                 updated_at_ms = excluded.updated_at_ms,
                 last_used_at_ms = excluded.last_used_at_ms"
        );
        sqlx::query(&sql)
            .bind(user.to_string())
            .bind(method.id.as_str())
            .bind(method.kind.as_str())
            .bind(sam_account_name)
            .bind(method.name.as_deref())
            .bind(method.address.as_deref())
            .bind(method.secret_sealed.as_deref())
            .bind(method.last_step)
            .bind(method.confirmed_at.map(Timestamp::as_millis))
            .bind(method.created_at.as_millis())
            .bind(self.now_ms())
            .bind(method.last_used_at.map(Timestamp::as_millis))
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(())
    }

    async fn remove_method(&self, user: &ObjectGuid, kind: MethodKind) -> Result<bool, StoreError> {
        let done =
            sqlx::query("DELETE FROM enrollment_methods WHERE object_guid = $1 AND kind = $2")
                .bind(user.to_string())
                .bind(kind.as_str())
                .execute(&mut *self.conn().await?)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn remove_method_id(&self, user: &ObjectGuid, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM enrollment_methods WHERE object_guid = $1 AND id = $2")
            .bind(user.to_string())
            .bind(id)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn remove_all(&self, user: &ObjectGuid) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM enrollment_methods WHERE object_guid = $1")
            .bind(user.to_string())
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(done.rows_affected())
    }

    async fn advance_totp_step(
        &self,
        user: &ObjectGuid,
        id: &str,
        step: i64,
    ) -> Result<bool, StoreError> {
        // The comparison is inside the UPDATE so the database decides the race: of several
        // instances accepting the same code, exactly one changes the row. `updated_at_ms` is
        // left alone because using a method does not change the registration.
        let done = sqlx::query(
            "UPDATE enrollment_methods SET last_step = $1, last_used_at_ms = $2
             WHERE object_guid = $3 AND id = $4 AND kind = 'totp'
                 AND (last_step IS NULL OR last_step < $1)",
        )
        .bind(step)
        .bind(self.now_ms())
        .bind(user.to_string())
        .bind(id)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn reconfirm_method(
        &self,
        user: &ObjectGuid,
        id: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        // Only the confirmation time changes: the TOTP step stays where `advance_totp_step` put
        // it, whatever raced in between.
        let done = sqlx::query(
            "UPDATE enrollment_methods SET confirmed_at_ms = $1, updated_at_ms = $2
             WHERE object_guid = $3 AND id = $4 AND confirmed_at_ms IS NOT NULL",
        )
        .bind(at.as_millis())
        .bind(self.now_ms())
        .bind(user.to_string())
        .bind(id)
        .execute(&mut *self.conn().await?)
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
        id: row.try_get("id")?,
        kind,
        name: row.try_get("name")?,
        address: row.try_get("address")?,
        secret_sealed: row.try_get("secret_sealed")?,
        last_step: row.try_get("last_step")?,
        confirmed_at: row
            .try_get::<Option<i64>, _>("confirmed_at_ms")?
            .map(Timestamp::from_millis),
        created_at: Timestamp::from_millis(row.try_get("created_at_ms")?),
        last_used_at: row
            .try_get::<Option<i64>, _>("last_used_at_ms")?
            .map(Timestamp::from_millis),
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
            id: "app-1".into(),
            kind: MethodKind::Totp,
            name: None,
            address: None,
            secret_sealed: Some(vec![0, 1, 2, 0xff]),
            last_step,
            confirmed_at: Some(Timestamp::from_millis(1_700_000_000_500)),
            created_at: Timestamp::from_millis(1_700_000_000_000),
            last_used_at: None,
        }
    }

    fn email() -> EnrolledMethod {
        EnrolledMethod {
            id: "address-1".into(),
            kind: MethodKind::Email,
            name: None,
            address: Some("jdoe@example.org".into()),
            secret_sealed: None,
            last_step: None,
            confirmed_at: None,
            created_at: Timestamp::from_millis(1_700_000_000_000),
            last_used_at: None,
        }
    }

    fn guid() -> ObjectGuid {
        ObjectGuid(uuid::Uuid::new_v4())
    }

    #[tokio::test]
    async fn methods_round_trip_and_are_replaced_per_id() {
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
    async fn totp_steps_only_move_forward_per_app() {
        let store = memory_store().await;
        let user = guid();
        assert!(
            !store.advance_totp_step(&user, "app-1", 1).await.unwrap(),
            "no method yet"
        );
        store.put_method(&user, "jdoe", &email()).await.unwrap();
        assert!(
            !store
                .advance_totp_step(&user, "address-1", 1)
                .await
                .unwrap(),
            "email has no step"
        );
        store.put_method(&user, "jdoe", &totp(None)).await.unwrap();
        let second = EnrolledMethod {
            id: "app-2".into(),
            name: Some("Tablet".into()),
            created_at: Timestamp::from_millis(1_700_000_000_001),
            ..totp(None)
        };
        store.put_method(&user, "jdoe", &second).await.unwrap();
        assert!(store.advance_totp_step(&user, "app-1", 100).await.unwrap());
        assert!(!store.advance_totp_step(&user, "app-1", 100).await.unwrap());
        assert!(!store.advance_totp_step(&user, "app-1", 99).await.unwrap());
        assert!(
            store.advance_totp_step(&user, "app-2", 100).await.unwrap(),
            "each app has its own steps"
        );
        assert!(store.advance_totp_step(&user, "app-1", 101).await.unwrap());
        assert!(
            !store
                .advance_totp_step(&guid(), "app-1", 102)
                .await
                .unwrap(),
            "another user's id is not theirs"
        );
        let methods = store.methods(&user).await.unwrap();
        assert_eq!(methods[0], email());
        assert_eq!(
            (methods[1].last_step, methods[2].last_step),
            (Some(101), Some(100))
        );
        assert!(methods[1].last_used_at.is_some());
        assert_eq!(methods[2].name.as_deref(), Some("Tablet"));
    }

    #[tokio::test]
    async fn apps_are_added_and_removed_by_id_and_an_address_replaces_the_last() {
        let store = memory_store().await;
        let user = guid();
        store.put_method(&user, "jdoe", &totp(None)).await.unwrap();
        let second = EnrolledMethod {
            id: "app-2".into(),
            ..totp(None)
        };
        store.put_method(&user, "jdoe", &second).await.unwrap();
        store.put_method(&user, "jdoe", &email()).await.unwrap();
        let other_address = EnrolledMethod {
            id: "address-2".into(),
            address: Some("jane@example.org".into()),
            ..email()
        };
        store
            .put_method(&user, "jdoe", &other_address)
            .await
            .unwrap();
        assert_eq!(
            store.methods(&user).await.unwrap(),
            [other_address, totp(None), second.clone()],
            "one address, two apps"
        );
        assert!(!store.remove_method_id(&guid(), "app-1").await.unwrap());
        assert!(store.remove_method_id(&user, "app-1").await.unwrap());
        assert!(!store.remove_method_id(&user, "app-1").await.unwrap());
        assert_eq!(store.methods(&user).await.unwrap()[1..], [second]);
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
