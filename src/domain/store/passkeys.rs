//! Passkeys (WebAuthn credentials) users registered, and the ceremonies between a challenge and
//! its answer.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::ObjectGuid;
use crate::domain::clock::Timestamp;

/// One registered passkey. Nothing in it is secret: the credential is a public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPasskey {
    /// Our id for it (random, URL-safe), as the API and the pages name it.
    pub id: String,
    pub user: ObjectGuid,
    pub name: String,
    pub credential_id: Vec<u8>,
    /// The WebAuthn library's credential, as JSON.
    pub credential: String,
    pub sign_count: u32,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

/// What a ceremony's state is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CeremonyPurpose {
    /// Adding a passkey; the subject is the registration session's token hash.
    Registration,
    /// Verifying with one; the subject is the flow's id hash.
    Authentication,
}

impl CeremonyPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            CeremonyPurpose::Registration => "registration",
            CeremonyPurpose::Authentication => "authentication",
        }
    }
}

#[async_trait]
pub trait PasskeyStore: Send + Sync {
    /// The user's passkeys, oldest first.
    async fn passkeys(&self, user: &ObjectGuid) -> Result<Vec<StoredPasskey>, StoreError>;
    /// Adds a passkey unless the user already has `limit`; false then, or when the credential id
    /// is already registered (to anyone). One statement, so two sessions adding at once cannot
    /// pass the limit together.
    async fn add_passkey(
        &self,
        passkey: &StoredPasskey,
        sam_account_name: &str,
        limit: usize,
    ) -> Result<bool, StoreError>;
    /// Removes every passkey of the user (the helpdesk clears a registration); returns how many.
    async fn remove_user_passkeys(&self, user: &ObjectGuid) -> Result<u64, StoreError>;
    /// Removes the user's passkey `id`; false when the user has none of that id.
    async fn remove_passkey(&self, user: &ObjectGuid, id: &str) -> Result<bool, StoreError>;
    /// Records an accepted use: the new counter and credential, only if the counter went up from
    /// the stored one (or both are 0: an authenticator without a counter), atomically, so a
    /// cloned authenticator cannot use the same count twice. False when it did not.
    async fn record_passkey_use(
        &self,
        user: &ObjectGuid,
        credential_id: &[u8],
        sign_count: u32,
        credential: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Keeps a ceremony's state (replacing an earlier one of the same subject) until `expires_at`.
    async fn put_ceremony(
        &self,
        purpose: CeremonyPurpose,
        subject: &[u8],
        state: &str,
        expires_at: Timestamp,
    ) -> Result<(), StoreError>;
    /// Takes (deletes and returns) the unexpired state: a challenge is answered once.
    async fn take_ceremony(
        &self,
        purpose: CeremonyPurpose,
        subject: &[u8],
        now: Timestamp,
    ) -> Result<Option<String>, StoreError>;
}
