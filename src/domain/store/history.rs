//! The local password history: what is kept of the passwords this service wrote.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::ObjectGuid;
use crate::domain::clock::Timestamp;

#[async_trait]
pub trait PasswordHistoryStore: Send + Sync {
    /// The newest `limit` hashes remembered for `user`, newest first.
    async fn password_hashes(
        &self,
        user: &ObjectGuid,
        limit: u32,
    ) -> Result<Vec<Vec<u8>>, StoreError>;
    /// Remembers `hash` as the user's newest password, set `at`, and forgets all but the newest
    /// `keep` (at least 1).
    async fn remember_password(
        &self,
        user: &ObjectGuid,
        hash: &[u8],
        at: Timestamp,
        keep: u32,
    ) -> Result<(), StoreError>;
    /// Forgets every password remembered for `user`.
    async fn forget_passwords(&self, user: &ObjectGuid) -> Result<(), StoreError>;
}
