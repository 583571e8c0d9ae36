//! Registered passkeys and the WebAuthn ceremonies in progress.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, parse_guid};
use crate::domain::ObjectGuid;
use crate::domain::clock::Timestamp;
use crate::domain::store::{CeremonyPurpose, PasskeyStore, StoreError, StoredPasskey};

#[async_trait]
impl PasskeyStore for Store {
    async fn passkeys(&self, user: &ObjectGuid) -> Result<Vec<StoredPasskey>, StoreError> {
        let rows = sqlx::query(
            "SELECT object_guid, id, name, credential_id, credential, sign_count, created_at_ms,
                 last_used_at_ms
             FROM passkeys WHERE object_guid = $1
             ORDER BY created_at_ms, id",
        )
        .bind(user.to_string())
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter().map(passkey_from_row).collect()
    }

    async fn add_passkey(
        &self,
        passkey: &StoredPasskey,
        sam_account_name: &str,
        limit: usize,
    ) -> Result<bool, StoreError> {
        // The limit is checked inside the INSERT, not by a separate read before it.
        let added = sqlx::query(
            "INSERT INTO passkeys (object_guid, id, sam_account_name, name, credential_id,
                 credential, sign_count, created_at_ms, last_used_at_ms)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, NULL
             WHERE (SELECT COUNT(*) FROM passkeys WHERE object_guid = $1) < $9
             ON CONFLICT (credential_id) DO NOTHING",
        )
        .bind(passkey.user.to_string())
        .bind(passkey.id.as_str())
        .bind(sam_account_name)
        .bind(passkey.name.as_str())
        .bind(passkey.credential_id.as_slice())
        .bind(passkey.credential.as_str())
        .bind(i64::from(passkey.sign_count))
        .bind(passkey.created_at.as_millis())
        .bind(limit as i64)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(added.rows_affected() == 1)
    }

    async fn remove_user_passkeys(&self, user: &ObjectGuid) -> Result<u64, StoreError> {
        let removed = sqlx::query("DELETE FROM passkeys WHERE object_guid = $1")
            .bind(user.to_string())
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(removed.rows_affected())
    }

    async fn remove_passkey(&self, user: &ObjectGuid, id: &str) -> Result<bool, StoreError> {
        let removed = sqlx::query("DELETE FROM passkeys WHERE object_guid = $1 AND id = $2")
            .bind(user.to_string())
            .bind(id)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(removed.rows_affected() == 1)
    }

    async fn record_passkey_use(
        &self,
        user: &ObjectGuid,
        credential_id: &[u8],
        sign_count: u32,
        credential: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        // Compare-and-set: of two uses with the same counter (a clone, or a race) one wins.
        let updated = sqlx::query(
            "UPDATE passkeys SET sign_count = $1, credential = $2, last_used_at_ms = $3
             WHERE object_guid = $4 AND credential_id = $5
                 AND (sign_count < $1 OR (sign_count = 0 AND $1 = 0))",
        )
        .bind(i64::from(sign_count))
        .bind(credential)
        .bind(at.as_millis())
        .bind(user.to_string())
        .bind(credential_id)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    async fn put_ceremony(
        &self,
        purpose: CeremonyPurpose,
        subject: &[u8],
        state: &str,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO passkey_ceremonies (purpose, subject, state, expires_at_ms)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (purpose, subject) DO UPDATE SET
                 state = excluded.state, expires_at_ms = excluded.expires_at_ms",
        )
        .bind(purpose.as_str())
        .bind(subject)
        .bind(state)
        .bind(expires_at.as_millis())
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    async fn take_ceremony(
        &self,
        purpose: CeremonyPurpose,
        subject: &[u8],
        now: Timestamp,
    ) -> Result<Option<String>, StoreError> {
        let taken: Option<(String, i64)> = sqlx::query_as(
            "DELETE FROM passkey_ceremonies WHERE purpose = $1 AND subject = $2
             RETURNING state, expires_at_ms",
        )
        .bind(purpose.as_str())
        .bind(subject)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        Ok(taken.and_then(|(state, expires)| (expires > now.as_millis()).then_some(state)))
    }
}

fn passkey_from_row(row: &AnyRow) -> Result<StoredPasskey, StoreError> {
    let sign_count: i64 = row.try_get("sign_count")?;
    Ok(StoredPasskey {
        id: row.try_get("id")?,
        user: parse_guid(row.try_get("object_guid")?, "passkeys")?,
        name: row.try_get("name")?,
        credential_id: row.try_get("credential_id")?,
        credential: row.try_get("credential")?,
        sign_count: u32::try_from(sign_count)
            .map_err(|_| StoreError::new("passkeys.sign_count out of range"))?,
        created_at: Timestamp::from_millis(row.try_get("created_at_ms")?),
        last_used_at: row
            .try_get::<Option<i64>, _>("last_used_at_ms")?
            .map(Timestamp::from_millis),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::memory_store;

    fn passkey(user: ObjectGuid, id: &str, credential_id: u8) -> StoredPasskey {
        StoredPasskey {
            id: id.to_owned(),
            user,
            name: format!("Key {id}"),
            credential_id: vec![credential_id; 16],
            credential: "{}".to_owned(),
            sign_count: 0,
            created_at: Timestamp::from_millis(1),
            last_used_at: None,
        }
    }

    #[tokio::test]
    async fn passkeys_are_limited_unique_and_their_counters_only_go_up() {
        let store = memory_store().await;
        let (a, b) = (
            ObjectGuid(uuid::Uuid::from_u128(1)),
            ObjectGuid(uuid::Uuid::from_u128(2)),
        );
        assert!(
            store
                .add_passkey(&passkey(a, "p1", 1), "a", 2)
                .await
                .unwrap()
        );
        assert!(
            !store
                .add_passkey(&passkey(b, "p2", 1), "b", 2)
                .await
                .unwrap(),
            "same credential"
        );
        assert!(
            store
                .add_passkey(&passkey(a, "p3", 3), "a", 2)
                .await
                .unwrap()
        );
        assert!(
            !store
                .add_passkey(&passkey(a, "p4", 4), "a", 2)
                .await
                .unwrap(),
            "limit"
        );
        assert_eq!(store.passkeys(&a).await.unwrap().len(), 2);

        let at = Timestamp::from_millis(5);
        let id = [1u8; 16];
        assert!(
            store
                .record_passkey_use(&a, &id, 0, "{}", at)
                .await
                .unwrap(),
            "0 stays 0"
        );
        assert!(
            !store
                .record_passkey_use(&b, &id, 5, "{}", at)
                .await
                .unwrap(),
            "not b's"
        );
        assert!(
            store
                .record_passkey_use(&a, &id, 5, "{}", at)
                .await
                .unwrap()
        );
        assert!(
            !store
                .record_passkey_use(&a, &id, 5, "{}", at)
                .await
                .unwrap(),
            "same count"
        );
        assert!(
            !store
                .record_passkey_use(&a, &id, 4, "{}", at)
                .await
                .unwrap(),
            "lower"
        );
        assert!(
            !store
                .record_passkey_use(&a, &id, 0, "{}", at)
                .await
                .unwrap(),
            "back to 0"
        );
        let stored = store.passkeys(&a).await.unwrap();
        assert_eq!(
            (stored[0].sign_count, stored[0].last_used_at),
            (5, Some(at))
        );

        assert!(!store.remove_passkey(&b, "p1").await.unwrap(), "not b's");
        assert!(store.remove_passkey(&a, "p1").await.unwrap());
    }

    #[tokio::test]
    async fn a_ceremony_is_taken_once_and_not_after_it_expired() {
        let store = memory_store().await;
        let purpose = CeremonyPurpose::Authentication;
        let (now, later) = (Timestamp::from_millis(10), Timestamp::from_millis(20));
        store
            .put_ceremony(purpose, b"f", "s1", later)
            .await
            .unwrap();
        store
            .put_ceremony(purpose, b"f", "s2", later)
            .await
            .unwrap();
        let taken = store.take_ceremony(purpose, b"f", now).await.unwrap();
        assert_eq!(taken.as_deref(), Some("s2"));
        assert_eq!(store.take_ceremony(purpose, b"f", now).await.unwrap(), None);
        store
            .put_ceremony(purpose, b"f", "s3", later)
            .await
            .unwrap();
        assert_eq!(
            store.take_ceremony(purpose, b"f", later).await.unwrap(),
            None
        );
    }
}
