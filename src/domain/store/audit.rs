//! The audit log.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::ObjectGuid;
use crate::domain::clock::Timestamp;

/// What happened, for the audit table. Never holds a password, a code or a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    pub at: Timestamp,
    pub event: AuditKind,
    pub outcome: Outcome,
    pub object_guid: Option<ObjectGuid>,
    pub sam_account_name: Option<String>,
    /// Who acted when it was not the user: a helpdesk operator's sAMAccountName.
    pub actor: Option<String>,
    pub client_ip: Option<String>,
    pub method: Option<String>,
    pub reason: Option<String>,
    /// A typed login that matched no account, as [`crate::domain::secrets::Keys::login_hash`]: never in
    /// clear, since people type passwords into username boxes. `sam_account_name` is then `None`.
    pub login_hash: Option<String>,
}

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
    /// A webhook given up after `hooks.retry_for`; the reason names the hook.
    Hook,
}

impl AuditKind {
    pub const ALL: [AuditKind; 24] = [
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
        AuditKind::Hook,
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
            AuditKind::Hook => "hook",
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

/// An audit event as stored, with its sequence number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: i64,
    pub event: AuditEvent,
}

#[async_trait]
pub trait AuditLog: Send + Sync {
    async fn record(&self, event: &AuditEvent) -> Result<(), StoreError>;
    /// Events at or after `since`, oldest first, at most `limit`.
    async fn since(&self, since: Timestamp, limit: i64) -> Result<Vec<AuditRecord>, StoreError>;
    /// The next page: events after the event (`at`, `id`) in the same order.
    async fn after(
        &self,
        at: Timestamp,
        id: i64,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError>;
    /// The newest `limit` events about one user, newest first (the helpdesk's user card).
    async fn for_user(&self, user: &ObjectGuid, limit: i64)
    -> Result<Vec<AuditRecord>, StoreError>;
}
