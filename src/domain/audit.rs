//! The audit trail the flows write: one row per thing done or refused, never a secret.

use super::ObjectGuid;
use super::deps::{Client, Deps};
use super::store::{AuditEvent, MethodKind, StoreError};

/// One audit row. Built with what is known; never a password, code or secret.
pub struct Audit<'a> {
    pub event: &'a str,
    pub outcome: &'a str,
    pub user: Option<ObjectGuid>,
    pub sam_account_name: Option<&'a str>,
    pub method: Option<MethodKind>,
    pub reason: Option<&'a str>,
}

impl Deps {
    /// Writes an audit row. An audit failure fails the request: acting without a record is
    /// worse than not acting.
    pub async fn audit(&self, client: &Client, a: Audit<'_>) -> Result<(), StoreError> {
        self.audit_as(client, None, a).await
    }

    /// An audit row for something `actor` (a helpdesk operator) did, when it was not the user.
    /// A row the database does not take (it is down or read-only) is written to the log instead,
    /// at error level, so the event is on record somewhere.
    pub async fn audit_as(
        &self,
        client: &Client,
        actor: Option<&str>,
        a: Audit<'_>,
    ) -> Result<(), StoreError> {
        self.write_audit(client, actor, a, None).await
    }

    /// An audit row about a login someone typed that matched no account: it names no account,
    /// and the typed text is kept only as its keyed hash, `login_hash` (people type passwords
    /// into username boxes). `a.sam_account_name` is not used. Callers hash every login they
    /// are given, known or not, so one without an account takes no longer (~9 µs a hash in a
    /// debug build).
    pub async fn audit_typed_login(
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
        self.write_audit(client, actor, a, Some(login_hash)).await
    }

    async fn write_audit(
        &self,
        client: &Client,
        actor: Option<&str>,
        a: Audit<'_>,
        login_hash: Option<String>,
    ) -> Result<(), StoreError> {
        let event = AuditEvent {
            at_ms: self.now_ms(),
            event: a.event.to_owned(),
            outcome: a.outcome.to_owned(),
            object_guid: a.user,
            sam_account_name: a.sam_account_name.map(str::to_owned),
            actor: actor.map(str::to_owned),
            client_ip: client.ip.map(|ip| ip.to_string()),
            method: a.method.map(|m| m.as_str().to_owned()),
            reason: a.reason.map(str::to_owned),
            login_hash,
        };
        let written = self.audit.record(&event).await;
        if let Err(e) = &written {
            tracing::error!(
                audit.at_ms = event.at_ms,
                audit.event = %event.event,
                audit.outcome = %event.outcome,
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
    /// passed on (the event goes to the log, see [`Self::audit_as`]): the user is told the truth,
    /// that the change was made.
    pub async fn audit_done(&self, client: &Client, actor: Option<&str>, a: Audit<'_>) {
        // Logged by audit_as; nothing else to do.
        let _ = self.audit_as(client, actor, a).await;
    }

    /// The audit row of a throttle hit.
    pub async fn audit_throttled(
        &self,
        client: &Client,
        user: Option<(ObjectGuid, &str)>,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.audit(
            client,
            Audit {
                event: "throttled",
                outcome: "denied",
                user: user.map(|(guid, _)| guid),
                sam_account_name: user.map(|(_, sam)| sam),
                method: None,
                reason: Some(reason),
            },
        )
        .await
    }
}
