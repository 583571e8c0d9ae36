//! How a flow fails. The HTTP layer maps each variant to a status and a stable error code.

use std::time::Duration;

use super::directory::DirectoryError;
use super::licence::LicenceRequired;
use super::policy::Violation;
use super::scope::Exclusion;
use super::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// Wrong password, unknown user and disabled user alike.
    #[error("the username or password is wrong")]
    InvalidCredentials,
    /// No session, or it expired.
    #[error("the session has expired; sign in again")]
    Unauthorized,
    #[error("the code is wrong or has expired")]
    InvalidCode { remaining_attempts: i64 },
    /// Unknown, expired, used up or ended by too many wrong codes.
    #[error("this reset has expired or ended; please start again")]
    FlowNotFound,
    #[error("verify your identity first")]
    NotVerified,
    /// Not allowed, whatever the reason (a helpdesk sign-in by a non-member, a protected target).
    #[error("{0}")]
    Forbidden(String),
    /// The password was right, but self-service is not for this account.
    #[error("{0}")]
    NotInScope(Exclusion),
    #[error("no such user")]
    NotFound,
    #[error("too many attempts; try again later")]
    Throttled { retry_after: Duration },
    #[error("{0}")]
    InvalidInput(String),
    /// The new password breaks these rules (checked before anything is sent to AD, or, for
    /// history and minimum age, refused by AD). Never empty.
    #[error("the new password breaks the password policy: {}", rule_ids(.0))]
    PasswordRejected(Vec<Violation>),
    /// An email method was asked for but no mail server is configured.
    #[error("email is not available right now")]
    MailUnavailable,
    /// The password was right but AD requires a new one first (773 must change, 532 expired):
    /// a temporary password set by the helpdesk must not become a way to register methods.
    #[error(
        "your password must be changed before you can register methods; change it first (at \
         /change, or at your next Windows sign-in), then come back with the new one"
    )]
    PasswordChangeRequired,
    /// The user has a confirmed method (or, from outside `registration.allowed_networks`, none
    /// yet): this session must prove one, or redeem a registration code, before changing any.
    #[error("confirm it is you with a method you already registered first")]
    StepUpRequired,
    /// Self-service is off (`licence.azure_ad_premium`), and this is not a helpdesk operator
    /// registering their own authenticator.
    #[error(transparent)]
    LicenceRequired(#[from] LicenceRequired),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Too many failed sign-ins for this login (`throttle.signin_max_failures`), whether or not
    /// it names an account.
    #[error("too many failed sign-ins for this name; try again later, or reset or unlock")]
    SignInThrottled { retry_after: Duration },
    /// A helpdesk operator whose password was right has no authenticator app registered, which
    /// `helpdesk.operator_second_factor` requires.
    #[error(
        "operators sign in with a code from their own authenticator app: register one at /register first"
    )]
    SecondFactorRequired,
    /// The helpdesk cannot ask the caller's manager to approve, for this reason.
    #[error("{}", .0.message())]
    ManagerRefused(ManagerRefusal),
    /// Recovery codes were asked for by a user with no other confirmed method: they are a
    /// backup, never the only way in.
    #[error(
        "register an authenticator app, an email address or a passkey first; recovery codes are a backup"
    )]
    MethodRequired,
    /// A passkey's answer to its registration challenge did not check out (or there was no
    /// challenge waiting).
    #[error("the passkey could not be registered; please try again")]
    InvalidCredential,
    /// The user already has as many of this method as one may (5 authenticator apps, 5
    /// passkeys).
    #[error("you have registered as many of these as you can; remove one first")]
    LimitReached,
}

fn rule_ids(broken: &[Violation]) -> String {
    broken
        .iter()
        .map(Violation::rule)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why an operator cannot ask the caller's manager. Each has its own error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManagerRefusal {
    /// The caller's AD `manager` is empty, or names no account the service can see.
    NoManager,
    /// The manager's account is disabled.
    ManagerDisabled,
    /// The manager's account has no AD `mail` to send the link to.
    ManagerWithoutMail,
    /// The manager registered no method to confirm with.
    ManagerNotRegistered,
    /// The `manager` value changed (or was first seen) less than `helpdesk.manager_min_age` ago.
    ManagerTooRecent,
    /// The operator asking is the caller's manager.
    ManagerIsOperator,
}

impl ManagerRefusal {
    pub fn code(self) -> &'static str {
        match self {
            ManagerRefusal::NoManager => "no_manager",
            ManagerRefusal::ManagerDisabled => "manager_disabled",
            ManagerRefusal::ManagerWithoutMail => "manager_without_mail",
            ManagerRefusal::ManagerNotRegistered => "manager_not_registered",
            ManagerRefusal::ManagerTooRecent => "manager_too_recent",
            ManagerRefusal::ManagerIsOperator => "manager_is_operator",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            ManagerRefusal::NoManager => "This user has no manager in AD.",
            ManagerRefusal::ManagerDisabled => "The user's manager's account is disabled.",
            ManagerRefusal::ManagerWithoutMail => {
                "The user's manager has no mail address in AD to send the approval link to."
            }
            ManagerRefusal::ManagerNotRegistered => {
                "The user's manager has registered no method to confirm with (an authenticator \
                 app or an email address)."
            }
            ManagerRefusal::ManagerTooRecent => {
                "The user's manager was set too recently (helpdesk.manager_min_age) to vouch for \
                 them; verify the caller another way."
            }
            ManagerRefusal::ManagerIsOperator => {
                "You are this user's manager: another operator must ask, or verify the caller \
                 another way."
            }
        }
    }
}
