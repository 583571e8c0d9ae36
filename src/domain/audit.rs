//! The audit trail the flows write: one row per thing done or refused, never a secret.

use std::sync::Arc;

use super::ObjectGuid;
use super::client::Client;
use super::clock::Clock;
use super::store::{AuditEvent, AuditLog, AuditRecord, MethodKind, StoreError};

/// What an audit row records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditKind {
    SignIn,
    StepUp,
    /// A method registered (confirmed, for an address).
    EnrollmentAdded,
    /// A method removed by its owner.
    EnrollmentRemoved,
    EnrollmentConfirm,
    EnrollmentReconfirmed,
    RegistrationCodeIssued,
    /// A reset or unlock flow started: `success` for an eligible user, `decoy` otherwise.
    FlowStarted,
    Verification,
    CodeSent,
    PasswordReset,
    Unlock,
    Notification,
    /// A request refused by a limit; the reason names the [`Limit`].
    Throttled,
    /// An operator asked a caller's manager to approve.
    ManagerApprovalRequested,
    /// The manager's answer: `approved` or `declined`.
    ManagerApproval,
    HelpdeskSignIn,
    HelpdeskSessionEnded,
    HelpdeskLookup,
    HelpdeskReset,
    HelpdeskUnlock,
    HelpdeskClearRegistrations,
    HelpdeskLiftBlock,
}

impl AuditKind {
    pub const ALL: [AuditKind; 23] = [
        AuditKind::SignIn,
        AuditKind::StepUp,
        AuditKind::EnrollmentAdded,
        AuditKind::EnrollmentRemoved,
        AuditKind::EnrollmentConfirm,
        AuditKind::EnrollmentReconfirmed,
        AuditKind::RegistrationCodeIssued,
        AuditKind::FlowStarted,
        AuditKind::Verification,
        AuditKind::CodeSent,
        AuditKind::PasswordReset,
        AuditKind::Unlock,
        AuditKind::Notification,
        AuditKind::Throttled,
        AuditKind::ManagerApprovalRequested,
        AuditKind::ManagerApproval,
        AuditKind::HelpdeskSignIn,
        AuditKind::HelpdeskSessionEnded,
        AuditKind::HelpdeskLookup,
        AuditKind::HelpdeskReset,
        AuditKind::HelpdeskUnlock,
        AuditKind::HelpdeskClearRegistrations,
        AuditKind::HelpdeskLiftBlock,
    ];

    /// Its name in the audit table, the export and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::SignIn => "sign_in",
            AuditKind::StepUp => "step_up",
            AuditKind::EnrollmentAdded => "enrollment_added",
            AuditKind::EnrollmentRemoved => "enrollment_removed",
            AuditKind::EnrollmentConfirm => "enrollment_confirm",
            AuditKind::EnrollmentReconfirmed => "enrollment_reconfirmed",
            AuditKind::RegistrationCodeIssued => "registration_code_issued",
            AuditKind::FlowStarted => "flow_started",
            AuditKind::Verification => "verification",
            AuditKind::CodeSent => "code_sent",
            AuditKind::PasswordReset => "password_reset",
            AuditKind::Unlock => "unlock",
            AuditKind::Notification => "notification",
            AuditKind::Throttled => "throttled",
            AuditKind::ManagerApprovalRequested => "manager_approval_requested",
            AuditKind::ManagerApproval => "manager_approval",
            AuditKind::HelpdeskSignIn => "helpdesk_sign_in",
            AuditKind::HelpdeskSessionEnded => "helpdesk_session_ended",
            AuditKind::HelpdeskLookup => "helpdesk_lookup",
            AuditKind::HelpdeskReset => "helpdesk_reset",
            AuditKind::HelpdeskUnlock => "helpdesk_unlock",
            AuditKind::HelpdeskClearRegistrations => "helpdesk_clear_registrations",
            AuditKind::HelpdeskLiftBlock => "helpdesk_lift_block",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// How what an audit row records ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Denied,
    /// What an unknown or ineligible login gets, shaped like a success.
    Decoy,
    /// The directory may or may not have taken a write (it did not confirm it).
    Unknown,
    /// The helpdesk lifted a block that was not there.
    NotBlocked,
    Approved,
    Declined,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Success,
        Outcome::Failure,
        Outcome::Denied,
        Outcome::Decoy,
        Outcome::Unknown,
        Outcome::NotBlocked,
        Outcome::Approved,
        Outcome::Declined,
    ];

    /// Its name in the audit table, the export and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
            Outcome::Decoy => "decoy",
            Outcome::Unknown => "unknown",
            Outcome::NotBlocked => "not_blocked",
            Outcome::Approved => "approved",
            Outcome::Declined => "declined",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

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
            event: a.event.as_str().to_owned(),
            outcome: a.outcome.as_str().to_owned(),
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
