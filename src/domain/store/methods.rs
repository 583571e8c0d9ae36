//! The verification methods users register.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::ObjectGuid;
use crate::domain::clock::Timestamp;

/// A way a user can prove who they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MethodKind {
    Totp,
    Email,
    /// A WebAuthn credential; kept in a table of its own (`PasskeyStore`).
    Passkey,
}

impl MethodKind {
    pub const ALL: [MethodKind; 3] = [MethodKind::Totp, MethodKind::Email, MethodKind::Passkey];

    pub fn as_str(self) -> &'static str {
        match self {
            MethodKind::Totp => "totp",
            MethodKind::Email => "email",
            MethodKind::Passkey => "passkey",
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
    /// When the user proved control of the method; `None` while pending.
    pub confirmed_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

impl EnrolledMethod {
    /// Whether the method counts for a reset at `now`: confirmed, and, when confirmations go
    /// stale after `max_age` (`registration.reconfirm_days`), confirmed within it.
    pub fn is_current(&self, now: Timestamp, max_age: Option<std::time::Duration>) -> bool {
        match (self.confirmed_at, max_age) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(at), Some(age)) => at >= now - age,
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
    /// Sets `confirmed_at` of the user's confirmed method of `kind` to `at` (the user
    /// proved again that they hold it). Returns false when there is no such confirmed method.
    async fn reconfirm_method(
        &self,
        user: &ObjectGuid,
        kind: MethodKind,
        at: Timestamp,
    ) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_method_is_current_while_confirmed_within_the_limit() {
        let method = |confirmed_at: Option<i64>| EnrolledMethod {
            kind: MethodKind::Totp,
            address: None,
            secret_sealed: None,
            last_step: None,
            confirmed_at: confirmed_at.map(Timestamp::from_millis),
            created_at: Timestamp::from_millis(0),
        };
        let day = Duration::from_secs(86_400);
        let now = Timestamp::from_millis(10 * 86_400_000);
        assert!(!method(None).is_current(now, None), "pending");
        assert!(method(Some(0)).is_current(now, None), "never stale");
        let ms = now.as_millis();
        assert!(method(Some(ms - 86_400_000)).is_current(now, Some(day)));
        assert!(!method(Some(ms - 86_400_001)).is_current(now, Some(day)));
    }
}
