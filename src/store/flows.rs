//! Password resets and unlocks in progress, keyed by the SHA-256 of their flow id.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, parse_guid};
use crate::domain::clock::Timestamp;
use crate::domain::locale::Locale;
use crate::domain::store::{FlowStore, MethodKind, ResetFlow, StoreError};

#[async_trait]
impl FlowStore for Store {
    async fn create_flow(&self, flow: &ResetFlow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO reset_flows (id_hash, object_guid, login, sam_account_name,
                 methods_required, verified_totp_at_ms, verified_email_at_ms, failures,
                 created_at_ms, expires_at_ms, finished_at_ms, dc, locale,
                 verified_recovery_code_at_ms, verified_passkey_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(flow.id_hash.as_slice())
        .bind(flow.user.map(|g| g.to_string()))
        .bind(flow.login.as_str())
        .bind(flow.sam_account_name.as_deref())
        .bind(flow.methods_required)
        .bind(flow.verified_totp_at.map(Timestamp::as_millis))
        .bind(flow.verified_email_at.map(Timestamp::as_millis))
        .bind(flow.failures)
        .bind(flow.created_at.as_millis())
        .bind(flow.expires_at.as_millis())
        .bind(flow.finished_at.map(Timestamp::as_millis))
        .bind(flow.dc.as_deref())
        .bind(flow.locale.tag())
        .bind(flow.verified_recovery_code_at.map(Timestamp::as_millis))
        .bind(flow.verified_passkey_at.map(Timestamp::as_millis))
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    async fn flow(&self, id_hash: &[u8]) -> Result<Option<ResetFlow>, StoreError> {
        // Expired and finished flows are returned too: the caller tells the user which it is,
        // and the helpdesk view shows them until they are pruned.
        let row = sqlx::query(
            "SELECT id_hash, object_guid, login, sam_account_name, methods_required,
                 verified_totp_at_ms, verified_email_at_ms, failures, created_at_ms,
                 expires_at_ms, finished_at_ms, dc, locale, verified_recovery_code_at_ms,
                 verified_passkey_at_ms
             FROM reset_flows
             WHERE id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        row.as_ref().map(flow_from_row).transpose()
    }

    async fn mark_verified(
        &self,
        id_hash: &[u8],
        method: MethodKind,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        // One column per statement, never a read-modify-write of the whole row, so the two
        // methods verified at once on two instances are both kept.
        let sql = match method {
            MethodKind::Totp => {
                "UPDATE reset_flows SET verified_totp_at_ms = $1 WHERE id_hash = $2"
            }
            MethodKind::Email => {
                "UPDATE reset_flows SET verified_email_at_ms = $1 WHERE id_hash = $2"
            }
            MethodKind::RecoveryCode => {
                "UPDATE reset_flows SET verified_recovery_code_at_ms = $1 WHERE id_hash = $2"
            }
            MethodKind::Passkey => {
                "UPDATE reset_flows SET verified_passkey_at_ms = $1 WHERE id_hash = $2"
            }
        };
        sqlx::query(sql)
            .bind(at.as_millis())
            .bind(id_hash)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(())
    }

    async fn add_flow_failure(&self, id_hash: &[u8]) -> Result<i64, StoreError> {
        // Increment and read in one statement: concurrent failures are all counted, and each
        // caller sees its own total.
        let failures: Option<i64> = sqlx::query_scalar(
            "UPDATE reset_flows SET failures = failures + 1 WHERE id_hash = $1
             RETURNING failures",
        )
        .bind(id_hash)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        failures.ok_or_else(|| StoreError::new("no such reset flow (pruned)"))
    }

    async fn finish_flow(&self, id_hash: &[u8], at: Timestamp) -> Result<bool, StoreError> {
        // The condition is inside the UPDATE, so of several instances finishing the same flow
        // the database lets exactly one change the row.
        let done = sqlx::query(
            "UPDATE reset_flows SET finished_at_ms = $1
             WHERE id_hash = $2 AND finished_at_ms IS NULL",
        )
        .bind(at.as_millis())
        .bind(id_hash)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn reopen_flow(&self, id_hash: &[u8], at: Timestamp) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE reset_flows SET finished_at_ms = NULL
             WHERE id_hash = $1 AND finished_at_ms = $2",
        )
        .bind(id_hash)
        .bind(at.as_millis())
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    async fn set_flow_dc(&self, id_hash: &[u8], dc: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE reset_flows SET dc = $1 WHERE id_hash = $2")
            .bind(dc)
            .bind(id_hash)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(())
    }
}

fn flow_from_row(row: &AnyRow) -> Result<ResetFlow, StoreError> {
    let user = row
        .try_get::<Option<String>, _>("object_guid")?
        .map(|text| parse_guid(text, "reset_flows"))
        .transpose()?;
    Ok(ResetFlow {
        id_hash: row.try_get("id_hash")?,
        user,
        login: row.try_get("login")?,
        sam_account_name: row.try_get("sam_account_name")?,
        methods_required: row.try_get("methods_required")?,
        verified_totp_at: row
            .try_get::<Option<i64>, _>("verified_totp_at_ms")?
            .map(Timestamp::from_millis),
        verified_email_at: row
            .try_get::<Option<i64>, _>("verified_email_at_ms")?
            .map(Timestamp::from_millis),
        verified_recovery_code_at: row
            .try_get::<Option<i64>, _>("verified_recovery_code_at_ms")?
            .map(Timestamp::from_millis),
        verified_passkey_at: row
            .try_get::<Option<i64>, _>("verified_passkey_at_ms")?
            .map(Timestamp::from_millis),
        failures: row.try_get("failures")?,
        created_at: Timestamp::from_millis(row.try_get("created_at_ms")?),
        expires_at: Timestamp::from_millis(row.try_get("expires_at_ms")?),
        finished_at: row
            .try_get::<Option<i64>, _>("finished_at_ms")?
            .map(Timestamp::from_millis),
        dc: row.try_get("dc")?,
        locale: Locale::of(&row.try_get::<String, _>("locale")?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::memory_store;

    fn decoy() -> ResetFlow {
        ResetFlow {
            id_hash: vec![2; 32],
            user: None,
            login: "nobody".into(),
            sam_account_name: None,
            methods_required: 1,
            verified_totp_at: None,
            verified_email_at: None,
            verified_recovery_code_at: None,
            verified_passkey_at: None,
            failures: 0,
            created_at: Timestamp::from_millis(1_000),
            expires_at: Timestamp::from_millis(2_000),
            finished_at: None,
            dc: None,
            locale: Locale::En,
        }
    }

    #[tokio::test]
    async fn a_flow_is_returned_after_its_end_and_finishes_once() {
        let store = memory_store().await;
        store.create_flow(&decoy()).await.unwrap();
        assert!(
            store
                .finish_flow(&[2; 32], Timestamp::from_millis(5_000))
                .await
                .unwrap()
        );
        assert!(
            !store
                .finish_flow(&[2; 32], Timestamp::from_millis(6_000))
                .await
                .unwrap()
        );
        let expected = ResetFlow {
            finished_at: Some(Timestamp::from_millis(5_000)),
            ..decoy()
        };
        assert_eq!(store.flow(&[2; 32]).await.unwrap(), Some(expected));
    }

    #[tokio::test]
    async fn a_flow_reopens_only_from_the_finish_it_names() {
        let store = memory_store().await;
        store.create_flow(&decoy()).await.unwrap();
        assert!(
            store
                .finish_flow(&[2; 32], Timestamp::from_millis(5_000))
                .await
                .unwrap()
        );
        store
            .reopen_flow(&[2; 32], Timestamp::from_millis(4_000))
            .await
            .unwrap();
        assert!(
            !store
                .finish_flow(&[2; 32], Timestamp::from_millis(6_000))
                .await
                .unwrap(),
            "not reopened"
        );
        store
            .reopen_flow(&[2; 32], Timestamp::from_millis(5_000))
            .await
            .unwrap();
        assert!(
            store
                .finish_flow(&[2; 32], Timestamp::from_millis(7_000))
                .await
                .unwrap(),
            "reopened"
        );
        let flow = store.flow(&[2; 32]).await.unwrap().unwrap();
        assert_eq!(flow.finished_at, Some(Timestamp::from_millis(7_000)));
    }

    #[tokio::test]
    async fn an_invalid_guid_is_an_error() {
        let store = memory_store().await;
        store.create_flow(&decoy()).await.unwrap();
        sqlx::query("UPDATE reset_flows SET object_guid = 'not-a-guid'")
            .execute(&store.pool)
            .await
            .unwrap();
        let message = store.flow(&[2; 32]).await.unwrap_err().message;
        assert!(message.contains("not-a-guid"), "{message}");
    }
}
