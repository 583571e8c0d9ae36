//! Mails the flows send. `crate::mail` renders them (text + HTML, per language) and sends them.

use async_trait::async_trait;
use secrecy::SecretString;

use super::store::MethodKind;

/// What a mail says. Codes are secrets: they print as `[REDACTED]` in Debug and are never logged.
#[derive(Clone, Debug)]
pub enum MailKind {
    /// The code that confirms a new address during registration.
    EnrollmentCode {
        code: SecretString,
    },
    /// The code that verifies a password reset or unlock.
    ResetCode {
        code: SecretString,
    },
    /// Notifications: never a password or a code.
    PasswordReset,
    AccountUnlocked,
    MethodAdded {
        method: MethodKind,
    },
    MethodRemoved {
        method: MethodKind,
    },
    /// A helpdesk agent is verifying the caller: the code the user reads out to the agent on the
    /// call they made (unlike `ResetCode`, which must never be shared).
    HelpdeskCode {
        code: SecretString,
    },
    /// The helpdesk set a temporary password, delivered by mail at the operator's choice. The
    /// only mail that carries a password; it must be changed at next logon.
    TemporaryPassword {
        password: SecretString,
    },
    /// Notifications of what the helpdesk did (never a password or a code).
    HelpdeskPasswordReset,
    HelpdeskUnlocked,
    HelpdeskRegistrationsCleared,
    /// The helpdesk lifted the self-service block that wrong codes put on the account.
    HelpdeskBlockLifted,
    /// To `notify.admins`: a protected account (allow-listed in `policy.allow_protected`) reset
    /// its password through self-service. Names the account; never a password or a code.
    ProtectedAccountReset {
        account: String,
    },
    /// Batch reminders (`sspr-bridge remind`, `notify-expiry`), never a password or a code: set
    /// up a verification method; the password expires soon.
    RegistrationReminder,
    PasswordExpiry {
        /// Whole days left, rounded up.
        days_left: u32,
        expires_at: std::time::SystemTime,
    },
}

impl MailKind {
    /// A stable name for metrics and the audit; never a code or a password.
    pub fn label(&self) -> &'static str {
        match self {
            MailKind::EnrollmentCode { .. } => "enrollment_code",
            MailKind::ResetCode { .. } => "reset_code",
            MailKind::PasswordReset => "password_reset",
            MailKind::AccountUnlocked => "account_unlocked",
            MailKind::MethodAdded { .. } => "method_added",
            MailKind::MethodRemoved { .. } => "method_removed",
            MailKind::HelpdeskCode { .. } => "helpdesk_code",
            MailKind::TemporaryPassword { .. } => "temporary_password",
            MailKind::HelpdeskPasswordReset => "helpdesk_password_reset",
            MailKind::HelpdeskUnlocked => "helpdesk_unlocked",
            MailKind::HelpdeskRegistrationsCleared => "helpdesk_registrations_cleared",
            MailKind::HelpdeskBlockLifted => "helpdesk_block_lifted",
            MailKind::ProtectedAccountReset { .. } => "protected_account_reset",
            MailKind::RegistrationReminder => "registration_reminder",
            MailKind::PasswordExpiry { .. } => "password_expiry",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Mail {
    pub to: String,
    /// Used in the greeting when known.
    pub display_name: Option<String>,
    /// `en` or `nl`; anything else falls back to English.
    pub locale: String,
    pub kind: MailKind,
}

#[derive(Debug, thiserror::Error)]
#[error("mail not sent: {message}")]
pub struct MailError {
    pub message: String,
}

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mail: &Mail) -> Result<(), MailError>;
}
