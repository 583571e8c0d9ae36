//! The audit log.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::ObjectGuid;
use crate::domain::clock::Timestamp;

/// What happened, for the audit table. Never holds a password, a code or a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    pub at: Timestamp,
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
    /// A typed login that matched no account, as [`crate::domain::secrets::Keys::login_hash`]: never in
    /// clear, since people type passwords into username boxes. `sam_account_name` is then `None`.
    pub login_hash: Option<String>,
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
