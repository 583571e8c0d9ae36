//! The helpdesk: operators (members of `helpdesk.group_dn`, nested groups included) look a
//! caller up, verify them with a registered method, then reset to a temporary password that must
//! be changed at next logon, unlock, or clear the caller's registrations. The operator never
//! chooses the password. Everything is audited with the operator as actor.

use sha2::{Digest, Sha256};

mod actions;
mod approval;
mod caller;
mod card;
mod lists;
mod session;
pub mod temporary;

pub use lists::{AccountLists, Listed};

pub use approval::{APPROVAL_LIFETIME, Answer, ApprovalView, Approvals, caller_label};

pub use super::error::ManagerRefusal;
pub use super::settings::CallerCheck;
pub use super::store::{ApprovalStore, ManagerApproval};

use super::ObjectGuid;
use super::audit::AuditKind;
use super::deps::Deps;
use super::directory::DirectoryUser;
use super::store::{AuditRecord, MethodKind, Person, Session, ThrottleKey};

/// FILETIME (100 ns ticks since 1601) → Unix ms; `None` for 0 and "never".
pub fn filetime_ms(filetime: i64) -> Option<i64> {
    const EPOCH_DIFF_MS: i64 = 11_644_473_600_000;
    (filetime > 0 && filetime != i64::MAX).then(|| filetime / 10_000 - EPOCH_DIFF_MS)
}

/// How an operator verified a caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifiedBy {
    Registered(MethodKind),
    AdMail,
    Manager,
}

impl VerifiedBy {
    pub fn check(self) -> CallerCheck {
        match self {
            VerifiedBy::Registered(_) => CallerCheck::Registered,
            VerifiedBy::AdMail => CallerCheck::AdMail,
            VerifiedBy::Manager => CallerCheck::Manager,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.check().as_str()
    }
}

/// What an operator sees about a caller.
#[derive(Clone, Debug)]
pub struct UserCard {
    pub sam_account_name: String,
    pub user_principal_name: Option<String>,
    pub display_name: Option<String>,
    pub enabled: bool,
    pub locked: bool,
    pub locked_since_ms: Option<i64>,
    pub must_change_password: bool,
    pub password_last_set_ms: Option<i64>,
    pub totp: bool,
    /// The confirmed address, masked.
    pub email: Option<String>,
    /// When the earliest active method was confirmed.
    pub registered_at_ms: Option<i64>,
    /// The operator may act on this account (not protected, or allow-listed).
    pub actionable: bool,
    /// The account's AD `mail`, masked (where an `ad_mail` check sends its code).
    pub ad_mail: Option<String>,
    /// How this operator has verified the caller in this session, if they have.
    pub verified_by: Option<VerifiedBy>,
    /// Until when wrong codes block the user's self-service (Unix ms), if they do.
    pub blocked_until_ms: Option<i64>,
    pub recent_events: Vec<AuditRecord>,
}

/// What an operator does to an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// A temporary password, shown to the operator or mailed to the user.
    Reset {
        deliver_by_email: bool,
    },
    Unlock,
    ClearRegistrations,
}

impl Action {
    fn event(self) -> AuditKind {
        match self {
            Action::Reset { .. } => AuditKind::HelpdeskReset,
            Action::Unlock => AuditKind::HelpdeskUnlock,
            Action::ClearRegistrations => AuditKind::HelpdeskClearRegistrations,
        }
    }
}

/// A signed-in operator.
pub struct Operator {
    session: Session,
}

impl Operator {
    /// The operator's account, as it signed in.
    pub fn user(&self) -> ObjectGuid {
        self.session.user
    }

    pub fn sam_account_name(&self) -> &str {
        &self.session.sam_account_name
    }
}

pub struct Helpdesk<'a> {
    deps: &'a Deps,
}

const FORBIDDEN: &str = "Only members of the helpdesk group can sign in here.";

impl<'a> Helpdesk<'a> {
    pub fn new(deps: &'a Deps) -> Self {
        Self { deps }
    }
}

/// The key of the self-service block on a user (see `Subject::user_key`).
fn block_key(user: &DirectoryUser) -> Person {
    Person::User(user.guid)
}

/// The throttle key whose events are a session's membership checks.
fn membership_key(session_hash: &[u8]) -> ThrottleKey {
    let hex: String = session_hash.iter().map(|b| format!("{b:02x}")).collect();
    ThrottleKey::OperatorMembership(hex)
}

/// The AD `mail` of the account, if it has one.
fn ad_mail(user: &DirectoryUser) -> Option<&str> {
    user.mail
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
}

/// One verification per operator session, caller and kind of check, so one operator's check is
/// not another's, and a code mailed to AD `mail` proves `ad_mail`, never `registered`.
fn verification_id(session_hash: &[u8], user: &ObjectGuid, check: CallerCheck) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(b"sspr-bridge/helpdesk-verification/v1");
    hasher.update(session_hash);
    hasher.update(user.0.as_bytes());
    if check != CallerCheck::Registered {
        hasher.update(check.as_str().as_bytes());
    }
    hasher.finalize().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filetimes_convert_to_unix_ms() {
        // 2026-11-01T00:00:00Z
        assert_eq!(
            filetime_ms(134_379_648_000_000_000),
            Some(1_793_491_200_000)
        );
        assert_eq!(filetime_ms(0), None);
        assert_eq!(filetime_ms(i64::MAX), None);
    }
}
