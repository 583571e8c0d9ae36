//! What the flows need from persistent storage, as small traits. `crate::store` implements them
//! with sqlx on SQLite and PostgreSQL; unit tests may implement them in memory.

use async_trait::async_trait;

use super::ObjectGuid;

/// A way a user can prove who they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MethodKind {
    Totp,
    Email,
}

impl MethodKind {
    pub const ALL: [MethodKind; 2] = [MethodKind::Totp, MethodKind::Email];

    pub fn as_str(self) -> &'static str {
        match self {
            MethodKind::Totp => "totp",
            MethodKind::Email => "email",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// One registered (or pending) verification method of one user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrolledMethod {
    pub kind: MethodKind,
    /// Email: the address. TOTP: none.
    pub address: Option<String>,
    /// TOTP: the shared secret, encrypted with `security.secret_key` (AEAD); never stored in clear.
    pub secret_sealed: Option<Vec<u8>>,
    /// TOTP: the last accepted RFC 6238 time step; any step at or below it is refused.
    pub last_step: Option<i64>,
    /// Unix ms when the user proved control of the method; `None` while pending.
    pub confirmed_at_ms: Option<i64>,
    pub created_at_ms: i64,
}

/// What happened, for the audit table. Never holds a password, a code or a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    pub at_ms: i64,
    /// e.g. `sign_in`, `enrollment_added`, `flow_started`, `verification`, `password_reset`, `unlock`, `throttled`.
    pub event: String,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    pub object_guid: Option<ObjectGuid>,
    pub sam_account_name: Option<String>,
    /// Who acted when it was not the user: a helpdesk operator's sAMAccountName.
    pub actor: Option<String>,
    pub client_ip: Option<String>,
    pub method: Option<String>,
    pub reason: Option<String>,
}

/// An audit event as stored, with its sequence number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: i64,
    pub event: AuditEvent,
}

#[derive(Debug, thiserror::Error)]
#[error("storage error: {message}")]
pub struct StoreError {
    pub message: String,
}

impl StoreError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

#[async_trait]
pub trait RegistrationStore: Send + Sync {
    /// All methods of a user, pending and confirmed.
    async fn methods(&self, user: &ObjectGuid) -> Result<Vec<EnrolledMethod>, StoreError>;
    /// Inserts or replaces the user's method of `method.kind`; `sam_account_name` is kept for
    /// reports only (the key is the GUID).
    async fn put_method(
        &self,
        user: &ObjectGuid,
        sam_account_name: &str,
        method: &EnrolledMethod,
    ) -> Result<(), StoreError>;
    /// Returns whether a method was removed.
    async fn remove_method(&self, user: &ObjectGuid, kind: MethodKind) -> Result<bool, StoreError>;
    /// Removes every method of the user; returns how many.
    async fn remove_all(&self, user: &ObjectGuid) -> Result<u64, StoreError>;
    /// Records `step` as the last accepted TOTP step, atomically and only if it is greater than
    /// the stored one. Returns false when the step was already used (a replay), so two instances
    /// racing on the same code cannot both accept it.
    async fn advance_totp_step(&self, user: &ObjectGuid, step: i64) -> Result<bool, StoreError>;
}

#[async_trait]
pub trait AuditLog: Send + Sync {
    async fn record(&self, event: &AuditEvent) -> Result<(), StoreError>;
    /// Events at or after `since_ms`, oldest first, at most `limit`.
    async fn since(&self, since_ms: i64, limit: i64) -> Result<Vec<AuditRecord>, StoreError>;
}
