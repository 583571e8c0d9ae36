//! The report's counts, each summed up by the database in one query (on 50,000 users and a
//! year of audit rows, see benches/report).

use async_trait::async_trait;
use sqlx::Row;

use super::Store;
use crate::domain::ObjectGuid;
use crate::domain::clock::Timestamp;
use crate::domain::report::{Action, ActivityCount, Per, RegisteredUser, ReportQueries};
use crate::domain::store::{MethodKind, Outcome, StoreError};

#[async_trait]
impl ReportQueries for Store {
    async fn registered_users(
        &self,
        current_since: Option<Timestamp>,
    ) -> Result<Vec<RegisteredUser>, StoreError> {
        let rows = sqlx::query(
            "SELECT object_guid,
                 SUM(CASE WHEN kind = 'totp' THEN 1 ELSE 0 END) AS totp,
                 SUM(CASE WHEN kind = 'email' THEN 1 ELSE 0 END) AS email,
                 SUM(CASE WHEN kind = 'passkey' THEN 1 ELSE 0 END) AS passkey,
                 MAX(confirmed_at_ms) AS newest
             FROM (SELECT object_guid, kind, confirmed_at_ms FROM enrollment_methods
                   WHERE confirmed_at_ms IS NOT NULL
                   -- A passkey proved itself when added, and again at each use.
                   UNION ALL
                   SELECT object_guid, 'passkey', COALESCE(last_used_at_ms, created_at_ms)
                   FROM passkeys) AS confirmed
             GROUP BY object_guid",
        )
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter()
            .map(|row| {
                let text: String = row.try_get("object_guid")?;
                let guid = text.parse::<ObjectGuid>().map_err(|e| {
                    StoreError::new(format!(
                        "invalid object_guid {text:?} in enrollment_methods: {e}"
                    ))
                })?;
                let mut methods = Vec::new();
                if row.try_get::<i64, _>("totp")? > 0 {
                    methods.push(MethodKind::Totp);
                }
                if row.try_get::<i64, _>("email")? > 0 {
                    methods.push(MethodKind::Email);
                }
                if row.try_get::<i64, _>("passkey")? > 0 {
                    methods.push(MethodKind::Passkey);
                }
                let newest: i64 = row.try_get("newest")?;
                Ok(RegisteredUser {
                    guid,
                    methods,
                    current: current_since.is_none_or(|since| newest >= since.as_millis()),
                })
            })
            .collect()
    }

    async fn activity(
        &self,
        since: Timestamp,
        per: Per,
        actions: &[Action],
    ) -> Result<Vec<ActivityCount>, StoreError> {
        if actions.is_empty() {
            return Ok(Vec::new());
        }
        // The names are the service's own constants, never input.
        let names = actions
            .iter()
            .map(|a| format!("'{}'", a.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        // Grouped by position: PostgreSQL would not match a repeated expression with
        // placeholders in it to the selected one.
        let sql = format!(
            "SELECT ((at_ms + $2) / $3) * $3 - $2 AS period_ms, event, method, outcome,
                 COUNT(*) AS n
             FROM audit_events
             WHERE at_ms >= $1 AND event IN ({names})
             GROUP BY 1, 2, 3, 4"
        );
        let (width, offset) = per.width_and_offset();
        let rows = sqlx::query(&sql)
            .bind(since.as_millis())
            .bind(offset)
            .bind(width)
            .fetch_all(&mut *self.conn().await?)
            .await?;
        let mut counts = rows
            .iter()
            .map(|row| {
                let event: String = row.try_get("event")?;
                let outcome: String = row.try_get("outcome")?;
                let unknown = |what: &str, text: &str| {
                    StoreError::new(format!("unknown {what} {text:?} in audit_events"))
                };
                Ok(ActivityCount {
                    period: Timestamp::from_millis(row.try_get("period_ms")?),
                    action: Action::parse(&event).ok_or_else(|| unknown("event", &event))?,
                    method: row.try_get("method")?,
                    outcome: Outcome::parse(&outcome)
                        .ok_or_else(|| unknown("outcome", &outcome))?,
                    count: u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // The databases sort NULL differently; the order is the report's, not theirs.
        counts.sort_by(|a, b| {
            (a.period, a.action, &a.method, a.outcome.as_str()).cmp(&(
                b.period,
                b.action,
                &b.method,
                b.outcome.as_str(),
            ))
        });
        Ok(counts)
    }

    async fn refusal_reasons(
        &self,
        since: Timestamp,
        limit: i64,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT reason, COUNT(*) AS n
             FROM audit_events
             WHERE at_ms >= $1 AND reason IS NOT NULL AND outcome IN ('failure', 'denied')
             GROUP BY reason
             ORDER BY n DESC, reason
             LIMIT $2",
        )
        .bind(since.as_millis())
        .bind(limit.max(0))
        .fetch_all(&mut *self.conn().await?)
        .await?;
        rows.iter()
            .map(|row| {
                let n: i64 = row.try_get("n")?;
                Ok((row.try_get("reason")?, u64::try_from(n).unwrap_or(0)))
            })
            .collect()
    }

    async fn blocked_users(&self, now: Timestamp) -> Result<Vec<ObjectGuid>, StoreError> {
        // `ThrottleKey::Blocked(Person::User(guid))` is filed as `user:{guid}`.
        let keys: Vec<String> = sqlx::query_scalar(
            "SELECT key FROM throttle_blocks WHERE until_ms > $1 AND key LIKE 'user:%'",
        )
        .bind(now.as_millis())
        .fetch_all(&mut *self.conn().await?)
        .await?;
        Ok(keys
            .iter()
            .filter_map(|key| key.strip_prefix("user:")?.parse().ok())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::store::{
        AuditEvent, AuditKind, AuditLog, EnrolledMethod, RegistrationStore, ThrottleStore,
        new_method_id,
    };
    use crate::store::tests::memory_store;

    const DAY: i64 = 86_400_000;
    /// A Monday, 00:00 UTC.
    const MONDAY: i64 = 1_796_601_600_000;

    fn guid(n: u128) -> ObjectGuid {
        ObjectGuid(uuid::Uuid::from_u128(n))
    }

    fn event(at: i64, kind: AuditKind, method: Option<&str>, outcome: Outcome) -> AuditEvent {
        AuditEvent {
            at: Timestamp::from_millis(at),
            event: kind,
            outcome,
            object_guid: None,
            sam_account_name: None,
            actor: None,
            client_ip: None,
            method: method.map(str::to_owned),
            reason: None,
            login_hash: None,
        }
    }

    #[tokio::test]
    async fn registrations_are_summed_per_user() {
        let store = memory_store().await;
        let method = |kind, confirmed_at: Option<i64>| EnrolledMethod {
            id: new_method_id(),
            kind,
            name: None,
            address: None,
            secret_sealed: None,
            last_step: None,
            confirmed_at: confirmed_at.map(Timestamp::from_millis),
            created_at: Timestamp::from_millis(0),
            last_used_at: None,
        };
        let put = |user, m| {
            let store = store.clone();
            async move { store.put_method(&guid(user), "u", &m).await.unwrap() }
        };
        put(1, method(MethodKind::Totp, Some(10 * DAY))).await;
        // A second app: still one user, with one kind more than none.
        put(1, method(MethodKind::Totp, Some(2 * DAY))).await;
        put(1, method(MethodKind::Email, Some(DAY))).await;
        put(2, method(MethodKind::Email, Some(DAY))).await;
        put(3, method(MethodKind::Totp, None)).await;
        let mut users = store
            .registered_users(Some(Timestamp::from_millis(5 * DAY)))
            .await
            .unwrap();
        users.sort_by_key(|u| u.guid.0);
        assert_eq!(
            users,
            [
                RegisteredUser {
                    guid: guid(1),
                    methods: vec![MethodKind::Totp, MethodKind::Email],
                    current: true,
                },
                RegisteredUser {
                    guid: guid(2),
                    methods: vec![MethodKind::Email],
                    current: false,
                },
            ]
        );
        assert!(
            store
                .registered_users(None)
                .await
                .unwrap()
                .iter()
                .all(|u| u.current)
        );
    }

    #[tokio::test]
    async fn activity_is_counted_per_period_action_method_and_outcome() {
        let store = memory_store().await;
        let reset = |at, method, outcome| event(at, AuditKind::PasswordReset, method, outcome);
        for e in [
            reset(MONDAY + 1, Some("email"), Outcome::Success),
            reset(MONDAY + DAY, Some("email"), Outcome::Success),
            reset(MONDAY + 2 * DAY, Some("totp"), Outcome::Failure),
            reset(MONDAY - 1, Some("email"), Outcome::Success),
            reset(MONDAY - 8 * DAY, Some("email"), Outcome::Success),
            event(MONDAY, AuditKind::Unlock, None, Outcome::Success),
            event(MONDAY, AuditKind::SignIn, None, Outcome::Success),
        ] {
            store.record(&e).await.unwrap();
        }
        let since = Timestamp::from_millis(MONDAY - 7 * DAY);
        let weeks = store
            .activity(since, Per::Week, &Action::ALL)
            .await
            .unwrap();
        let row = |period: i64, action, method: Option<&str>, outcome, count| ActivityCount {
            period: Timestamp::from_millis(period),
            action,
            method: method.map(str::to_owned),
            outcome,
            count,
        };
        assert_eq!(
            weeks,
            [
                row(
                    MONDAY - 7 * DAY,
                    Action::Reset,
                    Some("email"),
                    Outcome::Success,
                    1
                ),
                row(MONDAY, Action::Reset, Some("email"), Outcome::Success, 2),
                row(MONDAY, Action::Reset, Some("totp"), Outcome::Failure, 1),
                row(MONDAY, Action::Unlock, None, Outcome::Success, 1),
            ]
        );
        let days = store
            .activity(Timestamp::from_millis(MONDAY), Per::Day, &[Action::Reset])
            .await
            .unwrap();
        let periods: Vec<i64> = days.iter().map(|r| r.period.as_millis()).collect();
        assert_eq!(periods, [MONDAY, MONDAY + DAY, MONDAY + 2 * DAY]);
    }

    #[tokio::test]
    async fn refusals_and_blocks() {
        let store = memory_store().await;
        for (reason, outcome, n) in [
            ("wrong_code", Outcome::Failure, 3),
            ("out_of_scope", Outcome::Denied, 2),
            ("ignored", Outcome::Success, 5),
        ] {
            for _ in 0..n {
                let e = AuditEvent {
                    reason: Some(reason.into()),
                    ..event(MONDAY, AuditKind::Verification, None, outcome)
                };
                store.record(&e).await.unwrap();
            }
        }
        let reasons = store
            .refusal_reasons(Timestamp::from_millis(MONDAY), 10)
            .await
            .unwrap();
        assert_eq!(
            reasons,
            [("wrong_code".to_owned(), 3), ("out_of_scope".to_owned(), 2)]
        );
        let now = Timestamp::from_millis(MONDAY);
        let later = Timestamp::from_millis(MONDAY + 1000);
        store
            .block(&format!("user:{}", guid(1)), later)
            .await
            .unwrap();
        store
            .block(&format!("user:{}", guid(2)), now)
            .await
            .unwrap();
        store.block("login:ab12", later).await.unwrap();
        assert_eq!(store.blocked_users(now).await.unwrap(), [guid(1)]);
    }
}
