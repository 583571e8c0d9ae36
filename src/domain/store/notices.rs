//! What the batch commands have mailed.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::ObjectGuid;
use crate::domain::clock::Timestamp;

/// A mail a batch command (`remind`, `notify-expiry`) sends a user, recorded so that it goes out
/// only as often as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub user: ObjectGuid,
    /// e.g. `registration_reminder`, `password_expiry`.
    pub kind: String,
    /// What makes one notice of a kind different from another (for an expiry warning: the
    /// threshold and the password's pwdLastSet); empty when the kind has one per user.
    pub key: String,
    pub sent_at: Timestamp,
}

#[async_trait]
pub trait NoticeLog: Send + Sync {
    /// When the notice (user, kind, key) was last sent, if ever.
    async fn notice_sent_at(
        &self,
        user: &ObjectGuid,
        kind: &str,
        key: &str,
    ) -> Result<Option<Timestamp>, StoreError>;
    /// Records `notice` as sent unless the same (user, kind, key) was sent at or after
    /// `since` ([`Timestamp::MIN`]: ever). True when recorded, and only then may the mail go out:
    /// atomic, so two runs at once send it once.
    async fn claim_notice(&self, notice: &Notice, since: Timestamp) -> Result<bool, StoreError>;
    /// Withdraws a claimed notice whose mail could not be sent, so the next run tries again.
    async fn release_notice(&self, notice: &Notice) -> Result<(), StoreError>;
}
