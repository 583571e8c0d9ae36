//! The audit trail the flows write: one row per thing done or refused, never a secret.

use std::sync::Arc;

use super::ObjectGuid;
use super::client::Client;
use super::clock::Clock;
use super::store::{AuditEvent, AuditLog, AuditRecord, MethodKind, StoreError};
/// The port speaks these; they are named here too, beside the service that writes them.
pub use super::store::{AuditKind, Outcome};

/// One audit row. Built with what is known; never a password, code or secret.
pub struct Audit<'a> {
    pub event: AuditKind,
    pub outcome: Outcome,
    pub user: Option<ObjectGuid>,
    pub sam_account_name: Option<&'a str>,
    pub method: Option<MethodKind>,
    pub reason: Option<&'a str>,
}

/// Writes the audit trail: owns the log and reads the clock for each row's time.
#[derive(Clone)]
pub struct Auditor {
    log: Arc<dyn AuditLog>,
    clock: Arc<dyn Clock>,
}

impl Auditor {
    pub fn new(log: Arc<dyn AuditLog>, clock: Arc<dyn Clock>) -> Self {
        Self { log, clock }
    }

    /// Writes an audit row. An audit failure fails the request: acting without a record is
    /// worse than not acting.
    pub async fn record(&self, client: &Client, a: Audit<'_>) -> Result<(), StoreError> {
        self.as_actor(client, None, a).await
    }

    /// An audit row for something `actor` (a helpdesk operator) did, when it was not the user.
    /// A row the database does not take (it is down or read-only) is written to the log instead,
    /// at error level, so the event is on record somewhere.
    pub async fn as_actor(
        &self,
        client: &Client,
        actor: Option<&str>,
        a: Audit<'_>,
    ) -> Result<(), StoreError> {
        self.write(client, actor, a, None).await
    }

    /// An audit row about a login someone typed that matched no account: it names no account,
    /// and the typed text is kept only as its keyed hash, `login_hash` (people type passwords
    /// into username boxes). `a.sam_account_name` is not used. Callers hash every login they
    /// are given, known or not, so one without an account takes no longer (~9 µs a hash in a
    /// debug build).
    pub async fn typed_login(
        &self,
        client: &Client,
        actor: Option<&str>,
        login_hash: String,
        a: Audit<'_>,
    ) -> Result<(), StoreError> {
        let a = Audit {
            sam_account_name: None,
            ..a
        };
        self.write(client, actor, a, Some(login_hash)).await
    }

    async fn write(
        &self,
        client: &Client,
        actor: Option<&str>,
        a: Audit<'_>,
        login_hash: Option<String>,
    ) -> Result<(), StoreError> {
        let event = AuditEvent {
            at: self.clock.now(),
            event: a.event,
            outcome: a.outcome,
            object_guid: a.user,
            sam_account_name: a.sam_account_name.map(str::to_owned),
            actor: actor.map(str::to_owned),
            client_ip: client.ip.map(|ip| ip.to_string()),
            method: a.method.map(|m| m.as_str().to_owned()),
            reason: a.reason.map(str::to_owned),
            login_hash,
        };
        let written = self.log.record(&event).await;
        if let Err(e) = &written {
            tracing::error!(
                audit.at_ms = event.at.as_millis(),
                audit.event = event.event.as_str(),
                audit.outcome = event.outcome.as_str(),
                audit.object_guid = event.object_guid.map(|g| g.to_string()),
                audit.sam_account_name = event.sam_account_name,
                audit.login_hash = event.login_hash,
                audit.actor = event.actor,
                audit.client_ip = event.client_ip,
                audit.method = event.method,
                audit.reason = event.reason,
                error = %e,
                "audit row not written; the event is recorded in this log line instead"
            );
        }
        written
    }

    /// Audits what AD has already done. A failure to write the row cannot undo it, so it is not
    /// passed on (the event goes to the log, see [`Self::as_actor`]): the user is told the truth,
    /// that the change was made.
    pub async fn done(&self, client: &Client, actor: Option<&str>, a: Audit<'_>) {
        // Logged by as_actor; nothing else to do.
        let _ = self.as_actor(client, actor, a).await;
    }

    /// The latest `limit` rows about `user`, newest first, for the helpdesk's card.
    pub async fn for_user(
        &self,
        user: &ObjectGuid,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.log.for_user(user, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_and_outcome_has_its_own_name() {
        for kind in AuditKind::ALL {
            assert_eq!(AuditKind::parse(kind.as_str()), Some(kind));
        }
        for outcome in Outcome::ALL {
            assert_eq!(Outcome::parse(outcome.as_str()), Some(outcome));
        }
        assert_eq!(AuditKind::parse("Sign_In"), None);
    }
}
