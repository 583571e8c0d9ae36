//! Password resets and unlocks in progress.

use async_trait::async_trait;

use super::{MethodKind, StoreError};
use crate::domain::ObjectGuid;
use crate::domain::clock::Timestamp;
use crate::domain::locale::Locale;

/// A password reset or unlock in progress. The flow id is a bearer secret: only its SHA-256 is
/// stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResetFlow {
    pub id_hash: Vec<u8>,
    /// `None` for a decoy: the login matched no user who may reset (unknown, unregistered,
    /// disabled, out of scope). A decoy answers like a real flow and can never succeed, so the
    /// API does not reveal which accounts exist.
    pub user: Option<ObjectGuid>,
    /// The login as typed, lower-cased: the throttle key of a decoy, and what the audit shows.
    pub login: String,
    pub sam_account_name: Option<String>,
    pub methods_required: i64,
    pub verified_totp_at: Option<Timestamp>,
    pub verified_email_at: Option<Timestamp>,
    pub verified_passkey_at: Option<Timestamp>,
    pub failures: i64,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// Set once the password was written or the account unlocked: a flow is single use.
    pub finished_at: Option<Timestamp>,
    /// The DC that took the flow's write; the rest of the flow stays on it (replication lags).
    pub dc: Option<String>,
    /// Language of the person who started the flow, for the mails it sends.
    pub locale: Locale,
}

/// Whose a reset flow is, as the flows judge it (the row keeps the two columns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowOwner<'a> {
    User {
        guid: ObjectGuid,
        sam_account_name: &'a str,
    },
    /// The login named no account that may reset: the flow answers like a real one and can
    /// never succeed.
    Decoy { login: &'a str },
}

impl ResetFlow {
    /// A flow is a user's when it names both the account and its name; flows are written with
    /// both or neither.
    pub fn owner(&self) -> FlowOwner<'_> {
        match (self.user, self.sam_account_name.as_deref()) {
            (Some(guid), Some(sam_account_name)) => FlowOwner::User {
                guid,
                sam_account_name,
            },
            _ => FlowOwner::Decoy { login: &self.login },
        }
    }

    pub fn verified(&self) -> Vec<MethodKind> {
        let mut v = Vec::new();
        if self.verified_totp_at.is_some() {
            v.push(MethodKind::Totp);
        }
        if self.verified_email_at.is_some() {
            v.push(MethodKind::Email);
        }
        if self.verified_passkey_at.is_some() {
            v.push(MethodKind::Passkey);
        }
        v
    }
}

#[async_trait]
pub trait FlowStore: Send + Sync {
    async fn create_flow(&self, flow: &ResetFlow) -> Result<(), StoreError>;
    async fn flow(&self, id_hash: &[u8]) -> Result<Option<ResetFlow>, StoreError>;
    /// Records a successful verification with `method` (atomic per column, so two methods
    /// verified at once are both kept).
    async fn mark_verified(
        &self,
        id_hash: &[u8],
        method: MethodKind,
        at: Timestamp,
    ) -> Result<(), StoreError>;
    /// Adds one failed verification atomically; returns the new count.
    async fn add_flow_failure(&self, id_hash: &[u8]) -> Result<i64, StoreError>;
    /// Marks the flow finished; true only for the first caller (single use across instances).
    async fn finish_flow(&self, id_hash: &[u8], at: Timestamp) -> Result<bool, StoreError>;
    /// Undoes the [`Self::finish_flow`] made at `at` (the write it guarded failed), so the flow
    /// can be tried again; a flow finished at another time is left alone.
    async fn reopen_flow(&self, id_hash: &[u8], at: Timestamp) -> Result<(), StoreError>;
    async fn set_flow_dc(&self, id_hash: &[u8], dc: &str) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn a_flow_without_an_account_is_a_decoy() {
        let guid = ObjectGuid(uuid::Uuid::from_u128(7));
        let mut flow = ResetFlow {
            id_hash: vec![1],
            user: Some(guid),
            login: "jdoe".to_owned(),
            sam_account_name: Some("JDoe".to_owned()),
            methods_required: 1,
            verified_totp_at: None,
            verified_email_at: None,
            verified_passkey_at: None,
            failures: 0,
            created_at: Timestamp::from_millis(0),
            expires_at: Timestamp::from_millis(1),
            finished_at: None,
            dc: None,
            locale: Locale::En,
        };
        assert_eq!(
            flow.owner(),
            FlowOwner::User {
                guid,
                sam_account_name: "JDoe"
            }
        );
        flow.user = None;
        flow.sam_account_name = None;
        assert_eq!(flow.owner(), FlowOwner::Decoy { login: "jdoe" });
    }
}
