//! Recovery codes: a user's set of single-use codes, kept only as keyed hashes.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::ObjectGuid;
use crate::domain::clock::Timestamp;

#[async_trait]
pub trait RecoveryCodeStore: Send + Sync {
    /// Replaces the user's set with `hashes`, in one transaction: the old codes stop working
    /// as the new ones start.
    async fn replace_recovery_codes(
        &self,
        user: &ObjectGuid,
        hashes: &[Vec<u8>],
        at: Timestamp,
    ) -> Result<(), StoreError>;
    /// Voids the user's set; returns how many codes (used or not) it had.
    async fn remove_recovery_codes(&self, user: &ObjectGuid) -> Result<u64, StoreError>;
    /// How many of the user's codes are unused.
    async fn recovery_codes_left(&self, user: &ObjectGuid) -> Result<u64, StoreError>;
    /// Spends the unused code with `hash`, atomically: of several instances taking the same
    /// code, exactly one gets true.
    async fn take_recovery_code(
        &self,
        user: &ObjectGuid,
        hash: &[u8],
        at: Timestamp,
    ) -> Result<bool, StoreError>;
}
