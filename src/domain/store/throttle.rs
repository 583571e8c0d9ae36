//! Throttle counters and blocks.

use std::fmt;

use async_trait::async_trait;

use super::StoreError;
use crate::domain::ObjectGuid;
use crate::domain::clock::Timestamp;

/// Whom a block holds: an account, or the typed login of a decoy (as its keyed hash), so a
/// name without an account is blocked alike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Person {
    User(ObjectGuid),
    Login(String),
}

/// What a throttle counts or blocks. Its text ([`fmt::Display`]) is the key the
/// [`ThrottleStore`] files it under; nothing reads it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ThrottleKey {
    /// Reset and registration starts from one client address (or IPv6 prefix).
    AddressStarts(String),
    /// Code checks from one client address (or IPv6 prefix).
    AddressVerifications(String),
    /// The block a person earns by wrong codes.
    Blocked(Person),
    /// A person's wrong codes, counted towards that block.
    WrongCodes(Person),
    /// Code mails to a person.
    CodeMails(Person),
    /// Failed sign-ins of a user with one typed login (its keyed hash).
    UserSignIns(String),
    /// Failed sign-ins of an operator with one typed login (its keyed hash).
    OperatorSignInFailures(String),
    /// An operator's sign-in attempts with one typed login (its keyed hash).
    OperatorSignIns(String),
    /// An operator's requests.
    OperatorActions(ObjectGuid),
    /// Group membership checks of one operator session (the hex of its token hash).
    OperatorMembership(String),
}

impl fmt::Display for Person {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Person::User(guid) => write!(f, "user:{guid}"),
            Person::Login(hash) => write!(f, "login:{hash}"),
        }
    }
}

impl fmt::Display for ThrottleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThrottleKey::AddressStarts(address) => write!(f, "ip:start:{address}"),
            ThrottleKey::AddressVerifications(address) => write!(f, "ip:verify:{address}"),
            ThrottleKey::Blocked(person) => write!(f, "{person}"),
            ThrottleKey::WrongCodes(person) => write!(f, "{person}:fail"),
            ThrottleKey::CodeMails(person) => write!(f, "{person}:mail"),
            ThrottleKey::UserSignIns(hash) => write!(f, "signin:user:{hash}"),
            ThrottleKey::OperatorSignInFailures(hash) => write!(f, "signin:operator:{hash}"),
            ThrottleKey::OperatorSignIns(hash) => write!(f, "operator:sign_in:{hash}"),
            ThrottleKey::OperatorActions(guid) => write!(f, "operator:actions:{guid}"),
            ThrottleKey::OperatorMembership(hex) => write!(f, "operator:member:{hex}"),
        }
    }
}

/// Counters for throttling, kept in the database so they hold across restarts and instances.
#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// Records one event under `key` at `at`; returns how many events the key has at or
    /// after `since`, this one included.
    async fn hit(&self, key: &str, at: Timestamp, since: Timestamp) -> Result<i64, StoreError>;
    /// How many events the key has at or after `since`.
    async fn count(&self, key: &str, since: Timestamp) -> Result<i64, StoreError>;
    /// Blocks `key` until `until` (a later block extends, an earlier one does not shorten).
    async fn block(&self, key: &str, until: Timestamp) -> Result<(), StoreError>;
    /// When the block on `key` ends, if it is blocked at `now`.
    async fn blocked_until(
        &self,
        key: &str,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError>;
    /// Lifts the block on `key` and forgets every event of `counter` (its failure count), so
    /// the next failure starts a fresh count. Returns whether a block was in force at `now`.
    async fn lift_block(
        &self,
        key: &str,
        counter: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Deletes events and blocks that ended before `before`.
    async fn prune(&self, before: Timestamp) -> Result<u64, StoreError>;
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn throttle_keys_keep_the_text_rows_were_filed_under() {
        // Blocks and counts in force across an upgrade are found only under the same text.
        let guid = ObjectGuid(uuid::Uuid::from_u128(7));
        let user = || Person::User(guid);
        let login = || Person::Login("ab12".to_owned());
        let cases = [
            (
                ThrottleKey::AddressStarts("192.0.2.7".into()),
                "ip:start:192.0.2.7",
            ),
            (
                ThrottleKey::AddressVerifications("2001:db8::/64".into()),
                "ip:verify:2001:db8::/64",
            ),
            (ThrottleKey::Blocked(user()), &format!("user:{guid}")),
            (ThrottleKey::Blocked(login()), "login:ab12"),
            (
                ThrottleKey::WrongCodes(user()),
                &format!("user:{guid}:fail"),
            ),
            (ThrottleKey::WrongCodes(login()), "login:ab12:fail"),
            (ThrottleKey::CodeMails(login()), "login:ab12:mail"),
            (ThrottleKey::UserSignIns("ab12".into()), "signin:user:ab12"),
            (
                ThrottleKey::OperatorSignInFailures("ab12".into()),
                "signin:operator:ab12",
            ),
            (
                ThrottleKey::OperatorSignIns("ab12".into()),
                "operator:sign_in:ab12",
            ),
            (
                ThrottleKey::OperatorActions(guid),
                &format!("operator:actions:{guid}"),
            ),
            (
                ThrottleKey::OperatorMembership("0aff".into()),
                "operator:member:0aff",
            ),
        ];
        for (key, text) in cases {
            assert_eq!(key.to_string(), text);
        }
    }
}
